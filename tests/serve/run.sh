#!/usr/bin/env bash
# tests/serve/run.sh BUILD_DIR — `flashpool serve` end to end on the real
# engine: two flashpool-node processes on loopback + the coordinator serving
# HTTP, driven by the official openai / @anthropic-ai/sdk clients (the pinned
# ones of tests/api, installed there with `npm ci` when missing).
#   main phase  (serve.mjs main): (e) scripted DSML tool round trip via the
#               TEST-ONLY --test-script source, (c) cached prompt tokens and
#               suffix-only evaluation, (a) greedy == single-process CLI ids
#               (streaming and not), (b) Anthropic / Responses streaming,
#               (f) malformed JSON -> 400 and still serving, (g) /metrics;
#               then SIGTERM must give exit 0.
#   disk phase  (d) a >= 2000-token prompt with --kv-disk-dir, restart, the
#               same prompt is served from disk with identical output.
#   smoke       (h) deploy/run-local-pool.sh on free ports: curl a completion, stop it.
# Bounded: every step has a timeout; the whole suite takes ~1 minute.
set -uo pipefail
B=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
vec=${FP_VECTORS:-$root/../shared/vectors}
M="$vec/tiny-s1.gguf"
FP="$root/$B/flashpool"
NODE="$root/$B/flashpool-node"
CTX=4096
T0=$(date +%s)
for b in "$FP" "$NODE" "$root/$B/flashpool-mkmodel"; do [ -x "$b" ] || { echo "serve: $b missing (run make)"; exit 1; }; done
[ -r "$M" ] || { echo "serve: $M missing (set FP_VECTORS)"; exit 1; }
command -v node >/dev/null || { echo "serve: node is required"; exit 1; }

# The SDKs: tests/api's pinned packages, reached through a node_modules link.
api="$root/tests/api"
if [ ! -d "$api/node_modules/openai" ] || [ ! -d "$api/node_modules/@anthropic-ai/sdk" ]; then
  (cd "$api" && npm ci --no-audit --no-fund --loglevel=error) || { echo "serve: npm ci failed"; exit 1; }
fi
OUT=$(mktemp -d /tmp/fp-serve.XXXXXX)
# Run serve.mjs from the temp dir next to a link to those packages (ESM
# imports resolve node_modules from the script's own directory).
ln -s "$api/node_modules" "$OUT/node_modules"
cp "$here/serve.mjs" "$OUT/serve.mjs"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$OUT"
}
trap cleanup EXIT INT TERM

fail=0
ok()  { echo "  ok   $1"; }
bad() { fail=$((fail + 1)); echo "  FAIL $1"; [ -f "${2:-/dev/null}" ] && tail -n 25 "$2" | sed 's/^/       /'; }

port_busy() { ss -ltnH "sport = :$1" 2>/dev/null | grep -q .; }
free_port() {   # a random free TCP port in 20000-59999
  local p
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 40000))
    port_busy "$p" || { echo "$p"; return 0; }
  done
  return 1
}

NP1=$(free_port); NP2=$(free_port)
while [ "$NP2" = "$NP1" ]; do NP2=$(free_port); done
node_start() {   # node_start NAME PORT
  "$NODE" -m "$M" --listen "tcp://127.0.0.1:$2" --threads 1 --name "$1" >>"$OUT/$1.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do port_busy "$2" && return 0; sleep 0.05; done
  bad "node $1 did not start" "$OUT/$1.log"
  return 1
}
node_start n1 "$NP1" && node_start n2 "$NP2" || exit 1

# serve_start NAME [extra flags]: sets SPID and BASE.
serve_start() {
  local name=$1; shift
  rm -f "$OUT/$name.port"
  "$FP" serve -m "$M" --host 127.0.0.1 --port 0 --port-file "$OUT/$name.port" --ctx "$CTX" --threads 1 \
      --node "tcp://127.0.0.1:$NP1" --node "tcp://127.0.0.1:$NP2" --plain --api-key serve-key --think none \
      --log-tokens "$OUT/$name.tokens" "$@" >"$OUT/$name.log" 2>&1 &
  SPID=$!
  PIDS+=("$SPID")
  for _ in $(seq 200); do [ -s "$OUT/$name.port" ] && break; kill -0 "$SPID" 2>/dev/null || break; sleep 0.05; done
  if [ ! -s "$OUT/$name.port" ]; then bad "serve $name did not start" "$OUT/$name.log"; return 1; fi
  BASE="http://127.0.0.1:$(cat "$OUT/$name.port")"
}
# serve_stop NAME: SIGTERM, expect a clean exit 0 within 30 s.
serve_stop() {
  kill -TERM "$SPID"
  local rc=124
  for _ in $(seq 300); do kill -0 "$SPID" 2>/dev/null || { wait "$SPID"; rc=$?; break; }; sleep 0.1; done
  if [ "$rc" = 0 ] && grep -q "serve: stopped" "$OUT/$1.log"; then ok "$1: SIGTERM -> clean exit 0"
  else bad "$1: SIGTERM gave exit $rc" "$OUT/$1.log"; kill -KILL "$SPID" 2>/dev/null; fi
}
mjs() {   # mjs PHASE NAME
  FP_BASE=$BASE FP_KEY=serve-key FP_TOKLOG="$OUT/$2.tokens" FP_CLI="$FP" FP_MODEL="$M" FP_CTX=$CTX \
    FP_DISK_STATE="$OUT/disk.json" timeout 120 node "$OUT/serve.mjs" "$1"
  local rc=$?
  [ "$rc" = 0 ] || { fail=$((fail + 1)); echo "  (serve.mjs $1: exit $rc; server log tail:)"; tail -n 20 "$OUT/$2.log" | sed 's/^/       /'; }
}

# ---- main phase: scripted tool call first (replies are used in request order)
D=$'\xef\xbd\x9c''DSML'$'\xef\xbd\x9c'
cat >"$OUT/script.txt" <<EOF
Let me check.

<${D}tool_calls>
<${D}invoke name="get_weather">
<${D}parameter name="city" string="true">Paris</${D}parameter>
<${D}parameter name="days" string="false">2</${D}parameter>
</${D}invoke>
</${D}tool_calls>
%%
It is sunny in Paris, 21 degrees.
EOF
echo "serve: main phase (2 nodes + flashpool serve, SDK clients)"
if serve_start main --test-script "$OUT/script.txt"; then
  grep -q "TEST-ONLY\|tests only" "$OUT/main.log" && ok "--test-script announces itself as test-only" \
    || bad "no test-only warning for --test-script" "$OUT/main.log"
  mjs main main
  kill -0 "$SPID" 2>/dev/null && ok "server alive after the main phase" || bad "server died" "$OUT/main.log"
  # SIGTERM while a long streaming generation runs: it is cancelled, exit 0.
  curl -sN --max-time 60 "$BASE/v1/chat/completions" -H 'authorization: Bearer serve-key' \
    -H 'content-type: application/json' -d '{"model":"deepseek-v4-flash","stream":true,"temperature":0,
    "max_tokens":3000,"ignore_eos":true,"messages":[{"role":"user","content":"Write a long story."}]}' >"$OUT/long.sse" &
  CPID=$!
  for _ in $(seq 100); do [ "$(grep -c '^data:' "$OUT/long.sse")" -ge 20 ] && break; sleep 0.1; done
  busy=$(curl -s "$BASE/health")
  case "$busy" in *'"busy":true'*) ok "a long generation is running";; *) bad "no generation running: $busy" "$OUT/main.log";; esac
  t=$(date +%s%N)
  serve_stop main
  wait "$CPID" 2>/dev/null
  ms=$(( ($(date +%s%N) - t) / 1000000 ))
  grep -q "finish=cancel" "$OUT/main.log" && [ "$ms" -lt 10000 ] && ok "in-flight request cancelled by SIGTERM (stopped in $ms ms)" \
    || bad "in-flight request not cancelled promptly ($ms ms)" "$OUT/main.log"
fi

# ---- (d) disk tier across a restart
echo "serve: KV disk restart"
KV="$OUT/kv"
if serve_start disk1 --kv-disk-dir "$KV"; then
  mjs disk1 disk1
  serve_stop disk1
  n=$(ls "$KV"/*.fpkv 2>/dev/null | wc -l)
  [ "$n" -ge 1 ] && ok "(d) checkpoints on disk after shutdown ($n files)" || bad "(d) no checkpoint written" "$OUT/disk1.log"
  if serve_start disk2 --kv-disk-dir "$KV"; then
    mjs disk2 disk2
    grep -q "disk" "$OUT/disk2.log" && ok "(d) server log names the disk source" || bad "(d) no disk hit in the log" "$OUT/disk2.log"
    serve_stop disk2
  fi
fi

# ---- (h) make run's script on free ports, with a fresh default model
echo "serve: deploy/run-local-pool.sh smoke"
HP=$(free_port); RP1=$(free_port); RP2=$(free_port)
FP_PORT=$HP FP_NODE_PORTS="$RP1 $RP2" FP_MODEL="$OUT/default-tiny.gguf" \
  bash "$root/deploy/run-local-pool.sh" "$B" >"$OUT/run.log" 2>&1 &
RUNPID=$!
PIDS+=("$RUNPID")
for _ in $(seq 300); do grep -q "flashpool is serving" "$OUT/run.log" && break; kill -0 "$RUNPID" 2>/dev/null || break; sleep 0.1; done
if grep -q "flashpool is serving" "$OUT/run.log"; then
  [ -f "$OUT/default-tiny.gguf" ] && ok "(h) run-local-pool.sh made the default model" || bad "(h) no model made" "$OUT/run.log"
  resp=$(curl -s --max-time 30 "http://127.0.0.1:$HP/v1/chat/completions" -H 'content-type: application/json' \
    -d '{"model":"deepseek-v4-flash","messages":[{"role":"user","content":"Hello"}],"max_tokens":8}')
  if node -e 'const r=JSON.parse(process.argv[1]); process.exit(r.object==="chat.completion" && r.usage.completion_tokens>0 ? 0 : 1)' "$resp"
  then ok "(h) curl /v1/chat/completions on make run's pool"; else bad "(h) bad completion: ${resp:0:300}" "$OUT/run.log"; fi
  kill -TERM "$RUNPID"
  for _ in $(seq 100); do kill -0 "$RUNPID" 2>/dev/null || break; sleep 0.1; done
  left=0
  for p in "$HP" "$RP1" "$RP2"; do port_busy "$p" && left=1; done
  if ! kill -0 "$RUNPID" 2>/dev/null && [ "$left" = 0 ] && grep -q "serve: stopped" "$OUT/run.log"; then
    ok "(h) stopping run-local-pool.sh stops the server and both nodes"
  else bad "(h) processes left after stopping run-local-pool.sh" "$OUT/run.log"; fi
else
  bad "(h) run-local-pool.sh did not come up" "$OUT/run.log"
fi

echo "serve: $([ $fail = 0 ] && echo "all checks passed" || echo "$fail failed") in $(( $(date +%s) - T0 )) s"
[ "$fail" = 0 ]
