# Provisioning: vantage-provision (first-boot enrolment) and vantage-node, the node-side library (docs/provisioning.md).
# Its tests are part of `make test-fast` (cargo test --workspace); this target runs them alone.
.PHONY: test-provision

test-provision: deps ## provisioning and the node library: unit tests, and enrolment against the real hub on loopback (power loss, pending, reset...)
	$(CARGO) test -p vantage-node -p vantage-provision --locked
