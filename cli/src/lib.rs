//! vantage, the operator and approver command line.
