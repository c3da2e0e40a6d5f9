# P2P Tor Chat registry. `make help` lists the targets.
SHELL := /bin/bash
COMPOSE ?= docker compose
CONFIG := /etc/p2p-registry/config.ini
# Base images: the official ones, or local stand-ins where they cannot be pulled (CI, offline).
BASE_IMAGES_ENV := test/.run/base-images.env
ONION_WAIT_SECONDS ?= 300

# Node.js 24 LTS: the node on PATH when it is 24 or later, else the one `bash .ci/install-node.sh`
# unpacked (same default dir as that script), else the Node targets refuse with what to do.
NODE_VERSION := $(shell cat .node-version)
ifeq ($(shell id -u),0)
  P2P_NODE_HOME ?= /opt/p2p-registry/node-$(NODE_VERSION)
else
  P2P_NODE_HOME ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/p2p-registry/node-$(NODE_VERSION)
endif
node_major = $(shell v=$$($(1) --version 2>/dev/null) || v=0; v=$${v#v}; echo $${v%%.*})
ifneq ($(shell [ "$(call node_major,node)" -ge 24 ] && echo ok),ok)
  ifeq ($(shell [ "$(call node_major,$(P2P_NODE_HOME)/bin/node)" -ge 24 ] && echo ok),ok)
    export PATH := $(P2P_NODE_HOME)/bin:$(PATH)
  else
    node_problem := make $(MAKECMDGOALS) needs Node.js 24 LTS, found $(or $(shell node --version 2>/dev/null),no node): run `bash .ci/install-node.sh` (it unpacks Node $(NODE_VERSION) into $(P2P_NODE_HOME), which make then uses by itself)
  endif
endif

# Checked only when a target needs Docker; one line says what is missing and how to get it.
docker_problem = $(shell \
  if ! command -v docker >/dev/null 2>&1; then \
    echo "make $(MAKECMDGOALS) needs Docker, which is not installed: on Debian run sudo bash .ci/install-docker.sh (engine and compose v2), elsewhere install Docker Engine with the compose plugin"; \
  elif ! docker compose version >/dev/null 2>&1; then \
    echo "make $(MAKECMDGOALS) needs docker compose v2, which is missing (docker compose version fails): sudo bash .ci/install-docker.sh installs the plugin"; \
  elif ! docker info >/dev/null 2>&1; then \
    echo "make $(MAKECMDGOALS) needs a running Docker daemon, and docker info gets no answer: sudo bash .ci/install-docker.sh starts it (or, if it runs, add yourself to the docker group)"; \
  fi)

.DEFAULT_GOAL := help
.PHONY: help up down logs onion build test test-unit test-postgres test-hardening test-stack test-e2e typecheck bench bench-smoke base-images require-node require-docker
# make test runs its parts in order, in this one make process: -j must not interleave them.
.NOTPARALLEL:

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z0-9-]+:.*## / {printf "  make %-15s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

config.ini:
	@cp config.ini.example config.ini
	@echo "created config.ini from config.ini.example: edit it, then run make up again if you changed it"

# A bad config.ini stops `up` at the config one-shot: its one line (the server's parser) is shown.
# Then tor/wait-serving.sh waits, one progress line per change, until tor is healthy (bootstrapped,
# descriptor uploaded) and the registry too, and prints the URL; or says why not: a container
# that stopped (log tail), or tor's last health line after ONION_WAIT_SECONDS (default 300).
up: config.ini ## start the stack in the background and wait until the onion is served (ONION_WAIT_SECONDS)
	@$(COMPOSE) up -d --build || { \
	  echo "make up: docker compose up failed; the config one-shot said:" >&2; \
	  $(COMPOSE) --ansi never logs --no-color --no-log-prefix config 2>/dev/null | sed 's/\x1b\[[0-9;]*[A-Za-z]//g' | tail -n 5 >&2; exit 1; }
	@COMPOSE="$(COMPOSE)" ONION_WAIT_SECONDS=$(ONION_WAIT_SECONDS) bash tor/wait-serving.sh
	@if command -v qrencode >/dev/null; then $(MAKE) --no-print-directory onion; fi

down: ## stop the stack (the onion key stays in its volume)
	$(COMPOSE) down

logs: ## follow the logs of tor and the registry
	$(COMPOSE) logs -f --tail=100

onion: ## print the registry's ws://<onion>:<port>/ URL (waits for tor to write it)
	@deadline=$$(( $$(date +%s) + $(ONION_WAIT_SECONDS) )); \
	until url=$$($(COMPOSE) exec -T registry node /app/server/dist/cli.js onion --config $(CONFIG) 2>/dev/null); do \
	  if [ $$(date +%s) -ge $$deadline ]; then \
	    echo "no onion address after $(ONION_WAIT_SECONDS) s: check 'make logs' (is the stack up? did tor bootstrap?)" >&2; exit 1; \
	  fi; \
	  echo "  waiting for tor to publish the onion service..." >&2; sleep 3; \
	done; \
	echo "$$url"; \
	if command -v qrencode >/dev/null; then qrencode -t ANSIUTF8 "$$url"; fi

build: require-node node_modules/.package-lock.json ## compile the server and build both images
	npm run build
	@$(MAKE) --no-print-directory base-images
	source $(BASE_IMAGES_ENV) && $(COMPOSE) build

base-images: require-docker ## make sure base images exist (pull, or build local stand-ins offline)
	bash test/images/build-standins.sh

require-node:
	$(if $(node_problem),$(error $(node_problem)),@:)

require-docker:
	$(if $(docker_problem),$(error $(docker_problem)),@:)

# npm ci when node_modules is missing or older than the lockfile (a fresh clone, a pull that changed it).
node_modules/.package-lock.json: package-lock.json | require-node
	npm ci --no-audit --no-fund
	@touch $@

# Docker is checked first: without it the run would fail at the end, after the other suites.
test: require-node require-docker typecheck test-unit test-postgres test-hardening test-stack test-e2e ## everything: type-check, unit, the PostgreSQL store, hardening, the offline stack, then end-to-end through a private Tor network

typecheck: require-node node_modules/.package-lock.json ## type-check the server, the tests and the benchmark
	npm run typecheck

test-unit: typecheck ## the unit suite, server/dist built once first (no Docker needed)
	npm run test:unit

test-postgres: typecheck ## the claim store's contract and more on a throw-away PostgreSQL (needs Debian's postgresql package: sudo bash .ci/install-postgres.sh)
	npm run test:postgres

test-hardening: typecheck ## fuzzing, abuse limits and load on the built server (no Docker needed)
	npm run test:hardening

test-stack: base-images ## the shipped compose.yaml with tor offline: permissions, no ports, onion kept (needs Docker)
	bash test/offline/check-stack.sh

# Ryuk (testcontainers' reaper) is off unless you turn it on: its image cannot be pulled offline,
# and the suite cleans up by itself (down -v after the run, leftovers of interrupted runs before).
test-e2e: require-node node_modules/.package-lock.json base-images ## the whole stack with testcontainers through real onion routing (needs Docker, compose v2)
	source $(BASE_IMAGES_ENV) && TESTCONTAINERS_RYUK_DISABLED=$${TESTCONTAINERS_RYUK_DISABLED:-true} npm run test:e2e

bench: require-node node_modules/.package-lock.json ## measure speed, capacity and memory (about 3 minutes); writes bench/results.json
	npm run bench

bench-smoke: require-node node_modules/.package-lock.json ## a 30-second benchmark run
	npm run bench -- --smoke
