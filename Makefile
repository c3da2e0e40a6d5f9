# P2P Tor Chat registry. `make help` lists the targets.
SHELL := /bin/bash
COMPOSE ?= docker compose
# MONITORING=1: with the monitoring profile (Prometheus and the metrics forwarders): make up MONITORING=1.
# Give it to every target of that stack (down, logs, cluster-*), or export it.
MONITORING ?=
COMPOSE += $(if $(filter 1 yes true,$(MONITORING)),--profile monitoring)
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
.PHONY: help lint format up down logs onion status cluster-instances test-monitoring backup restore build cluster-up cluster-down cluster-status cluster-backends cluster-upgrade cluster-drain cluster-undrain cluster-remove cluster-logs test test-unit test-postgres test-hardening test-stack test-e2e typecheck bench bench-smoke bench-cluster bench-cluster-smoke bench-failover base-images require-node require-docker
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

# STATUS_ARGS: --watch (refresh), --json, --interval <seconds> (default 5: per-minute counts are
# measured over it). A terminal gets a TTY (for --watch); a pipe does not.
status: require-docker ## one screen from the registry's operator socket: peers, connections, registrations and refusals per minute, latency, store, onion (STATUS_ARGS=--watch)
	@$(COMPOSE) exec $$([ -t 0 ] || echo -T) registry node /app/server/dist/cli.js status --config $(CONFIG) $(STATUS_ARGS)

# The claim database (registry-data volume), online: `p2p-registry backup` inside the running
# registry writes a consistent copy (VACUUM INTO from a read-only connection, checked, synced) into
# the volume beside the database, since the root file system is read-only; it is copied out to
# BACKUP_DIR as registry-<UTC time>.db (mode 0600), and the copy in the volume is removed.
BACKUP_DIR ?= backups
DATA_DIR := /var/lib/p2p-registry
backup: require-docker ## copy the claim database, online, to backups/registry-<UTC time>.db (BACKUP_DIR; the stack must run)
	@set -u; umask 077; mkdir -p "$(BACKUP_DIR)"; \
	stamp=$$(date -u +%Y%m%dT%H%M%SZ); inside=$(DATA_DIR)/backup-$$stamp.db; out="$(BACKUP_DIR)/registry-$$stamp.db"; \
	if [ -z "$$($(COMPOSE) ps -q --status running registry 2>/dev/null)" ]; then \
	  echo "make backup: the registry is not running (make up first; a stopped stack's volume can be copied as docs/OPERATIONS.md says)" >&2; exit 1; fi; \
	$(COMPOSE) exec -T registry node /app/server/dist/cli.js backup "$$inside" --config $(CONFIG) >/dev/null \
	  && { said=$$($(COMPOSE) cp "registry:$$inside" "$$out" 2>&1) || { echo "$$said" >&2; false; }; }; rc=$$?; \
	$(COMPOSE) exec -T registry rm -f "$$inside"; \
	if [ $$rc = 0 ]; then chmod 0600 "$$out"; echo "$$out"; else rm -f "$$out"; echo "make backup: failed (see the line above)" >&2; exit 1; fi

# FILE (a make backup file) becomes the claim database: the registry is stopped, the file checked
# (the server opens it, migrating an older schema) and put in place as 1000:10001 mode 0600 by a
# one-off container of the registry service (its user, its volume, no network; the old -wal/-shm
# files go with the old database), then the registry is started again (with the database it had
# when the file is refused).
restore: require-docker ## replace the claim database with FILE (a make backup file); restarts the registry
	@set -u; file="$(FILE)"; \
	if [ -z "$$file" ] || [ ! -f "$$file" ]; then echo "make restore: FILE=<backup file> is missing or not a file: make restore FILE=backups/registry-<time>.db" >&2; exit 2; fi; \
	$(COMPOSE) stop registry >/dev/null 2>&1 || true; \
	$(COMPOSE) run --rm -T --no-deps --entrypoint sh registry -c ' \
	  set -eu; db=$$REGISTRY_STORE_DATABASE; partial=$$db.restore-partial; \
	  rm -f "$$partial"*; cat >"$$partial"; chmod 0600 "$$partial"; \
	  REGISTRY_STORE_DATABASE=$$partial node /app/server/dist/cli.js claims list --config $(CONFIG) >/dev/null 2>&1 \
	    || { rm -f "$$partial"*; echo "make restore: the file is not a claim database this server can open" >&2; exit 1; }; \
	  rm -f "$$db" "$$db-wal" "$$db-shm" "$$db-journal"; mv "$$partial" "$$db"; \
	  echo "restored $$(stat -c "%u:%g mode %a, %s bytes" "$$db" 2>/dev/null || true) -> $$db"' <"$$file"; rc=$$?; \
	$(COMPOSE) up -d registry >/dev/null 2>&1 || { echo "make restore: docker compose up -d registry failed: make logs" >&2; exit 1; }; \
	if [ $$rc = 0 ]; then echo "the registry is starting with the restored claims (make logs)"; \
	else echo "make restore: nothing restored; the registry is starting with the database it had" >&2; exit 1; fi

# --- The cluster (compose.cluster.yaml, docs/CLUSTER.md), every role on this host ----------------
CLUSTER_COMPOSE ?= $(COMPOSE) -f compose.cluster.yaml --profile all
CLUSTER_WAIT_SECONDS ?= 900
CLUSTER_PASSWORD_FILE := cluster-secrets/postgres-password

# A random PostgreSQL password, made once. The folder is 0700 (yours only); the file itself is
# 0644 because compose bind-mounts it into containers of three different users.
$(CLUSTER_PASSWORD_FILE):
	@mkdir -p cluster-secrets && chmod 0700 cluster-secrets
	@head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >$@.tmp && echo >>$@.tmp && chmod 0644 $@.tmp && mv $@.tmp $@
	@echo "made $@ (the PostgreSQL password; every host of the cluster needs the same file)"

cluster-up: config.ini $(CLUSTER_PASSWORD_FILE) require-docker ## start the cluster on this host and wait until the master onion is served (CLUSTER_WAIT_SECONDS)
	@$(CLUSTER_COMPOSE) up -d --build || { echo "make cluster-up: docker compose up failed: see $(CLUSTER_COMPOSE) logs" >&2; exit 1; }
	@started=$$(date +%s); last=; \
	until said=$$($(CLUSTER_COMPOSE) exec -T frontend /usr/local/bin/cluster health 2>&1); do \
	  if [ "$$said" != "$$last" ]; then printf '[%4ds] frontend %s\n' $$(( $$(date +%s) - started )) "$$said"; last=$$said; fi; \
	  if [ $$(( $$(date +%s) - started )) -ge $(CLUSTER_WAIT_SECONDS) ]; then \
	    echo "make cluster-up: the master onion is not served after $(CLUSTER_WAIT_SECONDS)s: $$said; see make cluster-logs (make cluster-up CLUSTER_WAIT_SECONDS=1800 waits longer)" >&2; exit 1; fi; \
	  sleep 5; \
	done; \
	master=$$(printf '%s\n' "$$said" | sed -n 's/^healthy: serving \([a-z2-7]*\.onion\).*/\1/p'); \
	port=$$($(CLUSTER_COMPOSE) exec -T backend1-tor cat /run/registry-config/tor.env | sed -n 's/^HIDDEN_SERVICE_PORT=//p'); \
	echo "$$said"; echo "ws://$$master:$$port/"

cluster-down: ## stop the cluster (the master key and the database stay in their volumes)
	$(CLUSTER_COMPOSE) down

cluster-status: ## onionbalance's view: each backend's descriptor, the master descriptor's last publication
	@$(CLUSTER_COMPOSE) exec -T frontend /usr/local/bin/cluster status

cluster-instances: require-docker ## p2p-registry status of every running backend registry on this host: its peers, database, log lag and lease (STATUS_ARGS=--json)
	@for service in $$($(CLUSTER_COMPOSE) ps --services --status running | grep -E '^backend[0-9]+-registry$$'); do \
	  echo "== $$service"; \
	  $(CLUSTER_COMPOSE) exec -T $$service node /app/server/dist/cli.js status --config $(CONFIG) $(STATUS_ARGS) || true; \
	done

cluster-backends: require-docker ## every backend: serving, drained or lapsed, its registry instance, whether the master descriptor lists it
	@COMPOSE="$(CLUSTER_COMPOSE)" bash tor/cluster-ops.sh backends

# Upgrades replace registry containers only: the backends' tors keep their introduction points.
cluster-upgrade: require-node node_modules/.package-lock.json require-docker ## rebuild the server image and replace each backend's registry, one at a time, each once the previous is healthy and leased
	npm run build
	@$(MAKE) --no-print-directory base-images
	@source $(BASE_IMAGES_ENV) && COMPOSE="$(CLUSTER_COMPOSE)" bash tor/cluster-ops.sh upgrade

# BACKEND: a backend's compose name (backend1) or its onion address. WAIT=1 also waits until no
# peer's tor can hold a descriptor that lists it (up to a day on the Tor network: docs/CLUSTER.md).
cluster-drain: require-docker ## take BACKEND out of the master descriptor (REASON=..., WAIT=1); returns once published without it
	@test -n "$(BACKEND)" || { echo "make cluster-drain: give BACKEND=backend1 (or its onion address)" >&2; exit 2; }
	@COMPOSE="$(CLUSTER_COMPOSE)" bash tor/cluster-ops.sh drain "$(BACKEND)" $(if $(REASON),--reason "$(REASON)") $(if $(filter 1 yes true,$(WAIT)),--wait)

cluster-undrain: require-docker ## bring a drained BACKEND back into the master descriptor
	@test -n "$(BACKEND)" || { echo "make cluster-undrain: give BACKEND=backend1 (or its onion address)" >&2; exit 2; }
	@COMPOSE="$(CLUSTER_COMPOSE)" bash tor/cluster-ops.sh undrain "$(BACKEND)"

cluster-remove: require-docker ## drain BACKEND, stop its registry and tor, and forget it
	@test -n "$(BACKEND)" || { echo "make cluster-remove: give BACKEND=backend2 (or its onion address)" >&2; exit 2; }
	@COMPOSE="$(CLUSTER_COMPOSE)" bash tor/cluster-ops.sh remove "$(BACKEND)"

cluster-logs: ## follow the logs of the cluster
	$(CLUSTER_COMPOSE) logs -f --tail=100

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
test: require-node require-docker lint typecheck test-monitoring test-unit test-postgres test-hardening test-stack test-e2e ## everything: format and lint, type-check, unit, the PostgreSQL store, hardening, the offline stack, then end-to-end through a private Tor network

lint: require-node node_modules/.package-lock.json ## the formatter and the linter (Biome) check every file; npm run format fixes what it can
	npm run lint

format: require-node node_modules/.package-lock.json ## formats every file and applies the linter's safe fixes
	npm run format

typecheck: require-node node_modules/.package-lock.json ## type-check the server, the tests and the benchmark
	npm run typecheck

# promtool is Debian's prometheus package (sudo bash .ci/install-prometheus.sh); the same checks
# Prometheus makes at start, plus the alert rules' own tests (monitoring/alerts.test.yml).
test-monitoring: ## promtool check config (both Prometheus files), check rules and test rules (monitoring/)
	@bash monitoring/check.sh

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
test-e2e: require-node node_modules/.package-lock.json base-images ## the whole stack, and the cluster through Onionbalance, with testcontainers through real onion routing (needs Docker, compose v2)
	source $(BASE_IMAGES_ENV) && TESTCONTAINERS_RYUK_DISABLED=$${TESTCONTAINERS_RYUK_DISABLED:-true} npm run test:e2e

bench: require-node node_modules/.package-lock.json ## measure speed, capacity and memory (about 4-5 minutes); writes bench/results.json
	npm run bench

bench-smoke: require-node node_modules/.package-lock.json ## a short benchmark run (about a minute)
	npm run bench -- --smoke

bench-cluster: require-node node_modules/.package-lock.json ## the cluster on a throw-away PostgreSQL: propagation, registrations vs pgbench, lookups vs single host (about 2 minutes; needs Debian's postgresql package); writes bench/results-cluster.json
	npm run bench:cluster

bench-failover: require-node node_modules/.package-lock.json base-images ## peers through a backend's upgrade, drain-then-stop, SIGKILL and pause, through the private Tor network (about 25 minutes; needs Docker); writes bench/results-failover.json
	source $(BASE_IMAGES_ENV) && npm run bench:failover

bench-cluster-smoke: require-node node_modules/.package-lock.json ## a short run of bench-cluster (under 45 seconds)
	npm run bench:cluster -- --smoke
