#!/usr/bin/env bash
# tests/api/run.sh BUILD_DIR — API tests with the official openai and
# @anthropic-ai/sdk clients against flashpool-apiserve (scripted backend,
# tiny-s1 tokenizer) on 127.0.0.1. Installs the pinned npm packages into
# tests/api/node_modules when missing, starts the server on a free port,
# runs every *.test.mjs, stops the server. Bounded: 180 s for the tests.
set -euo pipefail
B=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin="$root/$B/flashpool-apiserve"
vec=${FP_VECTORS:-$root/../shared/vectors}
gguf="$vec/tiny-s1.gguf"
[ -x "$bin" ] || { echo "api tests: $bin missing (run make bins)"; exit 1; }
[ -r "$gguf" ] || { echo "api tests: $gguf missing (set FP_VECTORS)"; exit 1; }
command -v node >/dev/null || { echo "api tests: node is required"; exit 1; }

cd "$here"
if [ ! -d node_modules/openai ] || [ ! -d node_modules/@anthropic-ai/sdk ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

tmp=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

"$bin" --gguf "$gguf" --host 127.0.0.1 --port 0 --port-file "$tmp/port" --api-key test-key --cors \
  --max-body 1048576 --max-queue 2 --keepalive-ms 300 --ctx 8192 >"$tmp/server.log" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -s "$tmp/port" ] && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if [ ! -s "$tmp/port" ]; then
  echo "api tests: server did not start:"; cat "$tmp/server.log"; exit 1
fi
port=$(cat "$tmp/port")

status=0
FP_BASE="http://127.0.0.1:$port" FP_KEY=test-key timeout 180 \
  node --test --test-concurrency=1 "$here"/*.test.mjs || status=$?
if ! kill -0 "$pid" 2>/dev/null; then
  echo "api tests: the server died during the tests"; status=1
fi
kill -TERM "$pid"
wait "$pid" || { echo "api tests: server exited with $?"; status=1; }
pid=
if [ "$status" -ne 0 ]; then echo "--- server log (tail) ---"; tail -n 60 "$tmp/server.log"; fi
exit "$status"
