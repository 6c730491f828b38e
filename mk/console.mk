# The operator's web console (`vantage console`, docs/console.md): its pages
# are plain files in console/web/ built into the CLI; its map data is made
# from npm packages (console/package-lock.json) by `make console`. A CLI
# built without it still runs; its console then shows no map.
.PHONY: console test-console

CONSOLE_WORLD := console/dist/world.json
CONSOLE_OUT ?= target/console-test

console/node_modules/.package-lock.json: console/package.json console/package-lock.json
	@bash scripts/deps.sh console
	@command -v npm >/dev/null || bash scripts/deps.sh console-npm
	cd console && npm ci --no-audit --no-fund --loglevel=error

$(CONSOLE_WORLD): console/build/world.mjs console/node_modules/.package-lock.json
	cd console && node build/world.mjs dist/world.json

console: $(CONSOLE_WORLD) ## the console's map data (npm, offline at run time); `make cli` builds it into vantage

test-console: deps console ## the console in headless Chromium against a real hub, 5 nodes and agents on loopback; screenshots in target/console-test (about 60 s after the build)
	@bash scripts/deps.sh console
	$(CARGO) build --locked --bins -p vantage-hub -p vantage-agent -p vantage-provision -p vantage-cli
	bash ci/console/run.sh target/debug $(CONSOLE_OUT)

TEST_TARGETS += test-console
