# TA-defender-lineage: the two commands are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

APP        := TA-defender-lineage
VERSION    := $(shell python3 -c "import json;print(json.load(open('globalConfig.json'))['meta']['version'])")
PY311      := $(or $(shell tools/find_python.sh 3.11),python3)
PY39       := $(shell tools/find_python.sh 3.9)
PY313      := $(shell tools/find_python.sh 3.13)
VENV       := .venv
VPY        := $(VENV)/bin/python
BUILD_VENV := .venv-py39
OUT        := output/$(APP)
PKG        := dist/$(APP)-$(VERSION).tar.gz
SRC_FILES  := $(shell find package globalConfig.json -type f -not -path '*/__pycache__/*' -not -name '*.pyc' 2>/dev/null)

.PHONY: help venv build package lint typecheck unit integration runtime appinspect test demo bench clean lock chromium

help:
	@echo "make demo    - build, start the Graph simulator and splunkd stand-in, run the three inputs"
	@echo "               (alerts, incidents, hunting), pipe their events through defenderlineage"
	@echo "make test    - lint, type-check, unit, integration (built add-on, Python 3.9 and 3.13), package, AppInspect"
	@echo "make bench   - throughput figures (side-by-side ratios)"
	@echo "make build   - $(OUT)/    make package - $(PKG)"
	@echo "Needs Python 3.11 (tools) and 3.9 (REQUIRED: lib/ is built with it); a missing 3.13 only skips its runtime tests."

$(VENV)/.installed: requirements-dev.txt
	@test -n "$(PY311)" || { echo "python3.11 not found"; exit 1; }
	$(PY311) -m venv $(VENV)
	$(VPY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

# lib/ is built with Python 3.9, the oldest python3 Splunk ships, so every pin resolves for it.
$(BUILD_VENV)/.created:
	@test -n "$(PY39)" || { echo "ERROR: Python 3.9 not found (pyenv install 3.9): lib/ must be built for it"; exit 1; }
	$(PY39) -m venv $(BUILD_VENV)
	touch $@

$(OUT)/.built: $(VENV)/.installed $(BUILD_VENV)/.created $(SRC_FILES) tools/postbuild_check.py
	rm -rf $(OUT)
	$(VENV)/bin/ucc-gen build --source package --config globalConfig.json --ta-version $(VERSION) \
	  --python-binary-name "$(CURDIR)/$(BUILD_VENV)/bin/python" --pip-version 25.2 \
	  --pip-custom-flag "--no-compile --prefer-binary --ignore-installed --no-binary charset-normalizer" \
	  -o output > output.build.log 2>&1 || { tail -40 output.build.log; exit 1; }
	@# ucc-gen can log an uncaught exception and still exit 0.
	@! grep -n "ERROR" output.build.log || { echo "ucc-gen reported errors (output.build.log)"; exit 1; }
	$(VPY) tools/postbuild_check.py $(OUT)
	touch $@

build: $(OUT)/.built

$(PKG): $(OUT)/.built tools/make_package.py
	mkdir -p dist
	rm -f $(PKG)
	$(VPY) tools/make_package.py $(OUT) $(PKG)

package: $(PKG)

# The UI tests (tests/integration/test_ui.py) drive Debian's chromium through Playwright; Playwright's
# own browser download is never used. Installed when missing and possible (root with apt-get);
# otherwise the UI tests skip LOUDLY (a warning at collection and a skip reason naming chromium).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the UI tests"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	      || echo "*** WARNING: chromium could not be installed: the UI tests will be SKIPPED ***"; \
	  else echo "*** WARNING: chromium not found and not installable here (root and apt-get needed): the UI tests will be SKIPPED ***"; fi; }

lint: venv
	$(VENV)/bin/ruff check package/bin tests tools
	$(VENV)/bin/ruff format --check package/bin tests tools

typecheck: venv
	$(VENV)/bin/mypy

unit: venv
	$(VPY) -m pytest -q tests/unit

integration: build chromium
	$(VPY) -m pytest -q tests/integration

appinspect: package
	$(VPY) tools/run_appinspect.py $(PKG)

test: lint typecheck build chromium
	PY39="$(PY39)" PY313="$(PY313)" $(VPY) -m pytest -q tests
	$(MAKE) --no-print-directory appinspect

demo: build
	@$(VPY) tools/demo.py --addon $(OUT) --python "$(or $(PY39),$(PY313))"

bench: build
	$(VPY) tools/bench.py --addon $(OUT)

lock:
	$(PY311) -m venv /tmp/tadl-lock && /tmp/tadl-lock/bin/pip install -q -r requirements-dev.in && \
	  (echo "# Pinned from requirements-dev.in (pip freeze). Regenerate: make lock"; /tmp/tadl-lock/bin/pip freeze) > requirements-dev.txt

clean:
	rm -rf output dist output.build.log .pytest_cache .mypy_cache .ruff_cache
