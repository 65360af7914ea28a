#!/usr/bin/env bash
# run-local-pool.sh — `make run`: a local pool on this machine. Makes the
# embedded default model with flashpool-mkmodel (once), starts two
# flashpool-node processes on loopback, and `flashpool serve` (the
# coordinator) with the HTTP API on 127.0.0.1, waits until /health answers
# and prints how to call it. Ctrl-C (or SIGTERM) stops the server cleanly
# (KV checkpoints saved) and then the nodes.
#
# usage: deploy/run-local-pool.sh [BUILD_DIR]
# Environment: FP_PORT (HTTP port, 8080), FP_NODE_PORTS ("5601 5602"),
#   FP_MODEL (the model; the default one is made when missing),
#   FP_THREADS (threads per process, 1), FP_CTX (context, 4096),
#   FP_SERVE_ARGS (extra `flashpool serve` options, e.g. "--kv-disk-dir /tmp/kv").
set -euo pipefail
B=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PORT=${FP_PORT:-8080}
NODE_PORTS=${FP_NODE_PORTS:-"5601 5602"}
MODEL=${FP_MODEL:-$ROOT/$B/models/default-tiny.gguf}
THREADS=${FP_THREADS:-1}
CTX=${FP_CTX:-4096}
read -r -a EXTRA <<<"${FP_SERVE_ARGS:-}"

for bin in flashpool flashpool-node flashpool-mkmodel; do
  [ -x "$B/$bin" ] || { echo "run: $B/$bin missing: build first with 'make'" >&2; exit 1; }
done
port_busy() { ss -ltnH "sport = :$1" 2>/dev/null | grep -q .; }
for p in "$PORT" $NODE_PORTS; do
  if port_busy "$p"; then
    echo "run: port $p is already in use; choose others with FP_PORT / FP_NODE_PORTS" >&2
    exit 1
  fi
done

if [ ! -f "$MODEL" ]; then
  mkdir -p "$(dirname "$MODEL")"
  echo "run: making the embedded default model $MODEL (tiny, deterministic weights)"
  "$B/flashpool-mkmodel" --preset tiny --seed 7 --cond --quiet --out "$MODEL"
fi

LOGDIR=$(mktemp -d /tmp/flashpool-run.XXXXXX)
node_pids=()
serve_pid=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  # The server first (it still talks to the nodes while it shuts down).
  if [ -n "$serve_pid" ] && kill -0 "$serve_pid" 2>/dev/null; then
    kill -TERM "$serve_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$serve_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$serve_pid" 2>/dev/null || true
  fi
  for p in "${node_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  # Node logs are kept only when something went wrong.
  if [ "$rc" = 0 ]; then rm -rf "$LOGDIR"; echo "run: stopped"; else echo "run: stopped (node logs in $LOGDIR)"; fi
}
trap cleanup EXIT
trap 'exit 0' INT TERM

node_args=()
i=0
for np in $NODE_PORTS; do
  i=$((i + 1))
  "$B/flashpool-node" -m "$MODEL" --listen "tcp://127.0.0.1:$np" --threads "$THREADS" --name "node$i" \
      >"$LOGDIR/node$i.log" 2>&1 &
  node_pids+=($!)
  node_args+=(--node "tcp://127.0.0.1:$np")
done
# Wait until the nodes listen, so the coordinator's HELLO finds them.
for np in $NODE_PORTS; do
  for _ in $(seq 100); do port_busy "$np" && break; sleep 0.05; done
  port_busy "$np" || { echo "run: node on port $np did not start:" >&2; cat "$LOGDIR"/node*.log >&2; exit 1; }
done

# Loopback links: --plain (no CurveZMQ) is fine here, never across a network.
"$B/flashpool" serve -m "$MODEL" --host 127.0.0.1 --port "$PORT" --ctx "$CTX" --threads "$THREADS" \
    "${node_args[@]}" --plain "${EXTRA[@]}" &
serve_pid=$!

up=0
for _ in $(seq 300); do
  if curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; then up=1; break; fi
  kill -0 "$serve_pid" 2>/dev/null || break
  sleep 0.1
done
if [ "$up" != 1 ]; then
  echo "run: the server did not come up (see its messages above)" >&2
  exit 1
fi
cat <<MSG

flashpool is serving on http://127.0.0.1:$PORT (coordinator + $(echo $NODE_PORTS | wc -w) expert nodes)
  curl http://127.0.0.1:$PORT/v1/chat/completions -H 'content-type: application/json' \\
       -d '{"model":"deepseek-v4-flash","messages":[{"role":"user","content":"Hello"}],"max_tokens":32}'
Also: /v1/messages (Anthropic), /v1/responses, /v1/completions, /v1/models, /health, /metrics.
The default model is a tiny synthetic one (random weights): replies are noise, the
machinery is real. Point FP_MODEL at a DeepSeek V4 Flash GGUF for the real thing.
Ctrl-C stops the pool.
MSG
# Until the server or a node exits (or Ctrl-C / SIGTERM runs the trap).
while kill -0 "$serve_pid" 2>/dev/null; do
  for p in "${node_pids[@]}"; do
    kill -0 "$p" 2>/dev/null || { echo "run: a node exited; stopping (logs in $LOGDIR)" >&2; exit 1; }
  done
  sleep 0.5
done
# Exit 0 from the server means it was told to stop (Ctrl-C reaches it too).
if wait "$serve_pid"; then serve_pid=; exit 0; fi
echo "run: the server failed" >&2
exit 1
