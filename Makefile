# P2P Tor Chat registry. `make help` lists the targets.
SHELL := /bin/bash
COMPOSE ?= docker compose
CONFIG := /etc/p2p-registry/config.ini
# Base images: the official ones, or local stand-ins where they cannot be pulled (CI, offline).
BASE_IMAGES_ENV := test/.run/base-images.env
ONION_WAIT_SECONDS ?= 300

.DEFAULT_GOAL := help
.PHONY: help up down logs onion build test test-unit test-stack test-e2e bench bench-smoke base-images

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

config.ini:
	@cp config.ini.example config.ini
	@echo "created config.ini from config.ini.example: edit it, then run make up again if you changed it"

up: config.ini ## start tor and the registry in the background (docker compose up -d)
	$(COMPOSE) up -d --build
	@echo "waiting for the onion address: make onion"
	@$(MAKE) --no-print-directory onion

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

build: ## compile the server and build both images
	npm run build
	@$(MAKE) --no-print-directory base-images
	source $(BASE_IMAGES_ENV) && $(COMPOSE) build

base-images: ## make sure base images exist (pull, or build local stand-ins offline)
	bash test/images/build-standins.sh

test: ## everything: type-check, unit, fuzz and abuse tests, the offline stack, then end-to-end through a private Tor network
	@$(MAKE) --no-print-directory test-unit
	@$(MAKE) --no-print-directory test-stack
	@$(MAKE) --no-print-directory test-e2e

test-unit: ## type-check, build and run the unit suite (no Docker needed)
	npm test

test-stack: base-images ## the shipped compose.yaml with tor offline: permissions, no ports, onion kept (needs Docker)
	bash test/offline/check-stack.sh

# Ryuk (testcontainers' reaper) is off unless you turn it on: its image cannot be pulled offline,
# and the suite cleans up by itself (down -v after the run, leftovers of interrupted runs before).
test-e2e: base-images ## the whole stack with testcontainers through real onion routing (needs Docker, compose v2)
	source $(BASE_IMAGES_ENV) && TESTCONTAINERS_RYUK_DISABLED=$${TESTCONTAINERS_RYUK_DISABLED:-true} npx vitest run --project e2e

bench: ## measure speed, capacity and memory (about 3 minutes); writes bench/results.json
	npm run bench

bench-smoke: ## a 20-second benchmark run
	npm run bench -- --smoke
