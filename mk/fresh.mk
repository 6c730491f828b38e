# A newcomer's first run: `make demo` in a clean Debian 12 root (needs root and the Internet; not in `make test`).
.PHONY: fresh-check
fresh-check: ## build a clean Debian 12 root with mmdebstrap and run `make demo` in it, once
	@bash scripts/fresh-check.sh
