//! First-boot provisioning of a vantage node, and the node state and HTTPS client the agent shares.
