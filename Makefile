# make run   - install into .venv and start the broker on tcp:61613 (guest/guest, memory storage)
# make test  - install into .venv with the test dependencies and run the whole test suite

PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: run test install install-test assets screenshot bench clean

STOMPJS = stompd/transport/static/stomp.umd.min.js

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# The built-in page's STOMP client, from npm (no CDN at run time).
assets: $(STOMPJS)

# npm ci writes node_modules/.package-lock.json: the JavaScript tests need
# node_modules as well as the copied bundle.
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

$(STOMPJS): node_modules/.package-lock.json
	cp node_modules/@stomp/stompjs/bundles/stomp.umd.min.js $@

install: $(BIN)/python assets
	$(BIN)/pip install -q .

install-test: $(BIN)/python assets
	$(BIN)/pip install -q '.[test]'
	# The tests run the installed twistd plugin: refresh it from this tree.
	$(BIN)/pip install -q --no-deps --force-reinstall .

run: install
	$(BIN)/twistd -n --pidfile= stompd $(ARGS)

test: install-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Refresh docs/images/page.png and console.png, the README's pictures of the
# built-in page and the management console.
screenshot: install-test
	UPDATE_SCREENSHOT=1 $(BIN)/python -m pytest -q tests/integration/test_browser.py tests/integration/test_console.py

bench: install
	$(BIN)/python benchmarks/compare.py --start-stompd $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis node_modules $(STOMPJS)
