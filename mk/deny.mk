# cargo-deny over the whole dependency graph (deny.toml): banned crates (C TLS
# stacks: OpenSSL, native-tls, aws-lc), duplicate versions, licences, sources.
# Only checks that need no download run: CI reaches package registries but not
# the RustSec advisory database (a git repository), so `advisories` is left out.
.PHONY: deny
deny: deps ## cargo-deny: no OpenSSL/native-tls/aws-lc, duplicate versions, licences, crates.io only
	@bash scripts/cargo-deny.sh --locked check bans licenses sources

lint: deny
