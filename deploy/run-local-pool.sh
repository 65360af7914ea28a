#!/usr/bin/env bash
# run-local-pool.sh — the README's main job: a local pool on this machine.
# Makes the embedded default model with flashpool-mkmodel (once), starts two
# flashpool-node processes on loopback, and the coordinator serving the HTTP
# API on 127.0.0.1. Ctrl-C stops everything.
#
# Environment: FP_PORT (8080), FP_NODE_PORTS ("5601 5602"), FP_MODEL (path of
# the default model; made if missing), FP_THREADS.
set -euo pipefail
B=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PORT=${FP_PORT:-8080}
NODE_PORTS=${FP_NODE_PORTS:-"5601 5602"}
MODEL=${FP_MODEL:-$ROOT/$B/models/default-tiny.gguf}
THREADS=${FP_THREADS:-1}

if [ ! -f "$MODEL" ]; then
  mkdir -p "$(dirname "$MODEL")"
  echo "run: making the embedded default model $MODEL"
  "$B/flashpool-mkmodel" --preset tiny --seed 7 --cond --out "$MODEL"
fi

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

node_args=()
for np in $NODE_PORTS; do
  "$B/flashpool-node" -m "$MODEL" --listen "tcp://127.0.0.1:$np" --threads "$THREADS" --plain &
  pids+=($!)
  node_args+=(--node "tcp://127.0.0.1:$np")
done

"$B/flashpool" serve -m "$MODEL" --host 127.0.0.1 --port "$PORT" "${node_args[@]}" --plain \
    --threads "$THREADS" &
pids+=($!)

for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
  sleep 0.2
done
cat <<MSG

flashpool is serving on http://127.0.0.1:$PORT (coordinator + $(echo $NODE_PORTS | wc -w) expert nodes)
  curl http://127.0.0.1:$PORT/v1/chat/completions -H 'content-type: application/json' \\
       -d '{"model":"flashpool","messages":[{"role":"user","content":"Hello"}],"max_tokens":32}'
The default model is a tiny synthetic one (random weights): replies are noise, the
machinery is real. Point FP_MODEL at a DeepSeek V4 Flash GGUF for the real thing.
Ctrl-C stops the pool.
MSG
wait -n "${pids[@]}"
