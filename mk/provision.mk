# Provisioning: vantage-provision (first-boot enrolment) and the node-side library (README "Provisioning").
.PHONY: test-provision
TEST_TARGETS += test-provision

test-provision: deps ## provisioning: unit tests, and enrolment against the real hub on loopback (power loss, pending, reset...)
	$(CARGO) test -p vantage-provision --locked
