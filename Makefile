# clipserve: `make serve` and `make test` do all set-up on a fresh Debian machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

APT_PACKAGES := libjpeg62-turbo-dev libpng-dev libwebp-dev libopenblas-dev
# Only for `make screenshot` (run by `make test`): a headless browser and the checker's interpreter.
SCREENSHOT_PACKAGES := chromium-headless-shell python3
SWIFT ?= swift
MODEL ?= $(or $(CLIPSERVE_MODEL),random:ViT-B-32)
HOST ?= 0.0.0.0
PORT ?= 8000
RELEASE_BIN := .build/release/clipserve

.PHONY: help deps screenshot-deps build release test test-tsan screenshot serve embed-examples clean

help:
	@echo "make serve   install what is missing, build, serve MODEL (default $(MODEL)) on port $(PORT)"
	@echo "make test    install what is missing, build, run every test"
	@echo "make test-tsan  the runtime and HTTP tests under ThreadSanitizer"
	@echo "make screenshot  the status page under load in headless Chromium, checked (part of make test)"

# Installs the Debian packages of $(1) that are not there yet (as root, or through sudo).
define apt_install
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
endef

# Debian's -dev libraries the build links.
deps:
	$(call apt_install,$(APT_PACKAGES))
	@command -v $(SWIFT) >/dev/null || { echo "swift not found: install Swift 6.1 or later (swift.org) and put it on PATH"; exit 1; }

screenshot-deps:
	$(call apt_install,$(SCREENSHOT_PACKAGES))

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release --product clipserve

# Serves the tiny fixture model under load, screenshots / with headless Chromium and checks the DOM and the PNG;
# the files land in .build/status-page/.
SCREENSHOT := python3 scripts/status_screenshot.py --bin .build/debug/clipserve --out .build/status-page

test: deps screenshot-deps
	$(SWIFT) build --build-tests
	$(SWIFT) test
	$(SCREENSHOT)

# Built with --build-tests like `make test`, so the two share one build instead of rebuilding each other's flags.
screenshot: deps screenshot-deps
	$(SWIFT) build --build-tests
	$(SCREENSHOT)

test-tsan: deps
	$(SWIFT) test --sanitize=thread --scratch-path .build-tsan --filter 'InferenceRuntimeTests|ClipServeHTTPTests'

serve: release
	$(RELEASE_BIN) serve --model "$(MODEL)" --host $(HOST) --port $(PORT)

clean:
	rm -rf .build .build-tsan
