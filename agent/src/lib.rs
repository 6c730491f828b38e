//! The vantage node agent: subscribes to the hub, verifies orders, runs probes, reports results.
