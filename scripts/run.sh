#!/usr/bin/env bash
# `make run`: the whole Usher fleet on this machine — an embedded JetStream
# server, the simulator, ingest and one worker — until Ctrl-C. Logs go to
# .data/logs/<service>.log; this script prints where everything is.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.bin
DATA=.data
mkdir -p "$DATA/logs"

# Dev-only secrets, made once and kept in .data (never commit them).
[ -f "$DATA/api-key" ] || echo "dev-$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24)" > "$DATA/api-key"
[ -f "$DATA/secret-key" ] || echo "k1:$(head -c 32 /dev/urandom | base64)" > "$DATA/secret-key"
[ -f "$DATA/callback-secret" ] || head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' > "$DATA/callback-secret"
API_KEY=$(cat "$DATA/api-key")

export USHER_LOG_FORMAT=${USHER_LOG_FORMAT:-text}
export USHER_NATS_URL=nats://127.0.0.1:4333
export USHER_JETSTREAM_PORT=4333 USHER_JETSTREAM_MONITOR_PORT=8333 USHER_JETSTREAM_STORE_DIR="$DATA/jetstream"
export USHER_API_KEYS="dev:$API_KEY"
export USHER_HTTP_ADDR=127.0.0.1:8080
export USHER_METRICS_ADDR=127.0.0.1:8081
export USHER_SIMULATOR_ADDR=127.0.0.1:8090
export USHER_SIMULATOR_URL=http://127.0.0.1:8090
export USHER_SIMULATOR_PUBLIC_URL=http://127.0.0.1:8090
export USHER_WORKER_SLOTS=${USHER_WORKER_SLOTS:-4}
export USHER_WORKER_DRIVER=${USHER_WORKER_DRIVER:-browser}
# Ctrl-C hands bots still in meetings to the next worker after this long (they rejoin on the next `make run`).
export USHER_WORKER_DRAIN_TIMEOUT=${USHER_WORKER_DRAIN_TIMEOUT:-5s}
export USHER_SECRET_KEYS=$(cat "$DATA/secret-key")
export USHER_CALLBACK_SECRETS="dev:$(cat "$DATA/callback-secret")"
# Dev only: let a local zoom_tokens_url (http, loopback) work. Production refuses both.
export USHER_CALLBACK_ALLOW_HTTP=true USHER_CALLBACK_ALLOW_CIDRS=127.0.0.0/8,::1/128
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}

pids=()
stop() {
  trap - INT TERM EXIT
  echo; echo "==> stopping the fleet"
  for ((i=${#pids[@]}-1; i>=0; i--)); do kill -TERM "${pids[i]}" 2>/dev/null || true; wait "${pids[i]}" 2>/dev/null || true; done
  echo "==> stopped"
}
trap stop INT TERM EXIT

start() { # name binary
  "$BIN/$2" >>"$DATA/logs/$1.log" 2>&1 &
  pids+=($!)
  echo "==> started $1 (pid $!), log $DATA/logs/$1.log"
}
wait_http() { # name url
  for _ in $(seq 150); do curl -fsS -o /dev/null "$2" 2>/dev/null && return 0; sleep 0.2; done
  echo "$1 did not become ready at $2; last log lines:" >&2; tail -20 "$DATA/logs/$1.log" >&2; exit 1
}

start jetstream usher-jetstream
wait_http jetstream http://127.0.0.1:8333/healthz?js-enabled-only=true
start simulator usher-simulator
wait_http simulator http://127.0.0.1:8090/admin/stats
start ingest usher-ingest
wait_http ingest http://127.0.0.1:8080/readyz
start worker usher-worker
wait_http worker http://127.0.0.1:8081/readyz
# An example customer endpoint for signed-in Zoom bots: verifies Usher's
# signature and mints a ZAK from the simulator's Zoom API.
USHER_EXAMPLE_CALLBACK_SECRET=$(cat "$DATA/callback-secret") start zoom-tokens-callback zoom-tokens-callback
wait_http zoom-tokens-callback http://127.0.0.1:8091/healthz

cat <<MSG

Usher is running.
  API (ingest)      http://127.0.0.1:8080      Authorization: Token $API_KEY
  simulator         http://127.0.0.1:8090      (admin API: services/simulator/README.md)
  worker metrics    http://127.0.0.1:8081/metrics
  zoom_tokens_url   http://127.0.0.1:8091/zoom-tokens   (example customer endpoint; signs in as bot_metadata.zoom_user)
  JetStream         nats://127.0.0.1:4333      (monitor http://127.0.0.1:8333)
  logs              $DATA/logs/

Try it (README "Try it" has the whole session):
  export USHER_KEY=$API_KEY
  curl -s -X POST localhost:8090/admin/meetings -d '{"platform":"meet","auto_admit_after_seconds":1}'
  curl -s -X POST localhost:8080/api/v1/bots -H "Authorization: Token \$USHER_KEY" -H 'Content-Type: application/json' \\
       -d '{"meeting_url": "<the url above>", "bot_name": "Usher Notetaker"}'

Press Ctrl-C to stop.
MSG
wait -n "${pids[@]}" || true
echo "a service exited; see $DATA/logs/" >&2
