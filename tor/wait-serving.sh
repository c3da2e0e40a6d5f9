#!/usr/bin/env bash
# Runs on the host (`make up` calls it after `docker compose up -d`; not part of the tor image).
# Waits until the stack serves its onion: tor healthy (bootstrapped, descriptor uploaded: see
# tor/tor-control.pl) and the registry healthy; then prints ws://<onion>:<port>/. Meanwhile one
# progress line whenever the state changes (and every 30 s). Stops early with the reason when a
# container stopped (its exit code and log tail), or after ONION_WAIT_SECONDS with tor's last
# health line and log tail.
#
#   COMPOSE             the compose command, word-split (default: docker compose); tests add -p/-f
#   ONION_WAIT_SECONDS  how long to wait (default 300: a fresh onion on the public network is
#                       usually published within 1-2 minutes)
set -euo pipefail

read -ra dc <<<"${COMPOSE:-docker compose}"
timeout=${ONION_WAIT_SECONDS:-300}
config=/etc/p2p-registry/config.ini
poll=2
started=$SECONDS

# state SERVICE: "<status> <health>" of its container (e.g. "running healthy"), or "missing".
state() {
  local id
  id=$("${dc[@]}" ps -aq "$1" 2>/dev/null | head -n 1)
  if [ -z "$id" ]; then echo missing; return; fi
  docker inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{.State.ExitCode}}' "$id"
}
# last_health SERVICE: the output of its latest healthcheck (one line).
last_health() {
  local id
  id=$("${dc[@]}" ps -aq "$1" 2>/dev/null | head -n 1)
  [ -n "$id" ] || return 0
  docker inspect -f '{{if .State.Health}}{{range .State.Health.Log}}{{.Output}}{{end}}{{end}}' "$id" |
    grep -v '^[[:space:]]*$' | tail -n 1
}
log_tail() {
  echo "--- last lines of docker compose logs $1 ---" >&2
  "${dc[@]}" --ansi never logs --no-color --tail 20 "$1" >&2 || true
}
stopped() { # SERVICE STATE: a container that should run has stopped
  local exit_code=${2##* }
  echo "make up: $1 stopped (${2%% *}, exit code $exit_code); the stack cannot serve the onion" >&2
  log_tail "$1"
  exit 1
}

last_line='' last_print=0
while :; do
  elapsed=$((SECONDS - started))
  tor=$(state tor) registry=$(state registry)
  case $tor in exited*|dead*) stopped tor "$tor" ;; missing) echo "make up: no tor container (is the stack up?)" >&2; exit 1 ;; esac
  case $registry in exited*|dead*) stopped registry "$registry" ;; esac
  read -r _ tor_health _ <<<"$tor"
  read -r _ registry_health _ <<<"$registry"
  if [ "$tor_health" = healthy ] && [ "$registry_health" = healthy ]; then
    url=$("${dc[@]}" exec -T registry node /app/server/dist/cli.js onion --config "$config")
    echo "serving after ${elapsed}s: $url"
    exit 0
  fi
  line="tor ${tor_health}: $(last_health tor || true); registry ${registry_health}"
  if [ "$line" != "$last_line" ] || [ $((elapsed - last_print)) -ge 30 ]; then
    printf '  [%3ds] %s\n' "$elapsed" "$line" >&2
    last_line=$line last_print=$elapsed
  fi
  if [ "$elapsed" -ge "$timeout" ]; then
    echo "make up: the onion is not served after ${timeout}s (ONION_WAIT_SECONDS). tor says: $(last_health tor || true)" >&2
    log_tail tor
    exit 1
  fi
  sleep "$poll"
done
