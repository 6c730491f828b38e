# The README's main command.
.PHONY: demo
demo: ## a hub and three nodes on this machine, approved DNSSEC and HTTP measurements, results shown
	@bash scripts/demo.sh
