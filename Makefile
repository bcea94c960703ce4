# clipserve: `make serve` and `make test` do all set-up on a fresh Debian machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

APT_PACKAGES := libjpeg62-turbo-dev libpng-dev libwebp-dev libopenblas-dev
SWIFT ?= swift
MODEL ?= $(or $(CLIPSERVE_MODEL),random:ViT-B-32)
HOST ?= 0.0.0.0
PORT ?= 8000
RELEASE_BIN := .build/release/clipserve

.PHONY: help deps build release test test-tsan serve embed-examples clean

help:
	@echo "make serve   install what is missing, build, serve MODEL (default $(MODEL)) on port $(PORT)"
	@echo "make test    install what is missing, build, run every test"
	@echo "make test-tsan  the runtime and HTTP tests under ThreadSanitizer"

# Installs Debian's -dev libraries that are not there yet (as root, or through sudo).
deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
	@command -v $(SWIFT) >/dev/null || { echo "swift not found: install Swift 6.1 or later (swift.org) and put it on PATH"; exit 1; }

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release --product clipserve

test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test

test-tsan: deps
	$(SWIFT) test --sanitize=thread --scratch-path .build-tsan --filter 'InferenceRuntimeTests|ClipServeHTTPTests'

serve: release
	$(RELEASE_BIN) serve --model "$(MODEL)" --host $(HOST) --port $(PORT)

clean:
	rm -rf .build .build-tsan
