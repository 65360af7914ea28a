#!/usr/bin/env bash
# tests/pool/figures.sh — the pool's benchmark figures on one machine
# (issue 4, docs/pool.md "Figures"): raw ZeroMQ round trip vs per-layer
# dispatch+combine in a real decode, decode tok/s with 2 loopback nodes vs
# single-process, node and coordinator memory (VmRSS / VmHWM from /proc),
# and hot-expert cache hit rates on a recorded routing trace.
#
# Slow (minutes) and timing-dependent, so it is NOT part of `make test`;
# it asserts nothing about speed, only prints. It does fail if a process
# fails. Usage:
#   bash tests/pool/figures.sh [MODEL.gguf] [REPS]
# Default model /tmp/real4.gguf, made with
#   build/flashpool-mkmodel --preset real --layers 4 --experts 16 --out /tmp/real4.gguf
# Environment: GEN (decode tokens per run, default 32), COORD_T (coordinator
# threads, default 2), NODE_T (threads per node, default 1), B (build dir).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
B="${B:-build}"
M="${1:-/tmp/real4.gguf}"
REPS="${2:-3}"
GEN="${GEN:-32}"
COORD_T="${COORD_T:-2}"
NODE_T="${NODE_T:-1}"
BIN="$ROOT/$B"
[ -f "$M" ] || { echo "figures.sh: no model $M (make it with flashpool-mkmodel, see the header)" >&2; exit 2; }
for b in flashpool flashpool-bench flashpool-node flashpool-ringbench flashpool-cachesim; do
  [ -x "$BIN/$b" ] || { echo "figures.sh: $BIN/$b missing: run make first" >&2; exit 2; }
done
O="$(mktemp -d /tmp/fp-figures.XXXXXX)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  rm -rf "$O"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
kib() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$2/status"; }   # kib FIELD PID
mib() { awk -v x="$1" 'BEGIN {printf "%.1f", x / 1024}'; }
stats3() {  # min median max of numbers on stdin
  sort -g | awk '{a[NR]=$1} END {if (NR==0) {print "n/a"; exit} printf "min %.3f median %.3f max %.3f (n=%d)", a[1], a[int((NR+1)/2)], a[NR], NR}'
}

echo "== setup"
echo "model $M ($(stat -c %s "$M") bytes), $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "coordinator threads $COORD_T, node threads $NODE_T, decode tokens per run $GEN, repetitions $REPS"

# ---- 1. raw ZeroMQ round trip: the DISPATCH of one decode token to one node
# (6 routed experts per token over 2 nodes = 3 items) and its COMBINE.
echo
echo "== raw ZeroMQ round trip (flashpool-ringbench, tcp loopback, blocking poll as the pool)"
for items in 3 6; do
  for r in $(seq "$REPS"); do
    "$BIN/flashpool-ringbench" -e tcp://127.0.0.1:0 --wait sleep -n 3000 --warmup 300 --items "$items" | tail -n +2
  done
done | tee "$O/rtt.csv" | sed 's/^/  /'
echo "  (columns: transport,endpoint,wait,n_embd,tokens,items,dispatch_bytes,combine_bytes,iters,min_us,p50_us,p90_us,p99_us,mean_us)"

# ---- 2. decode tok/s: single-process vs 2 nodes on loopback.
P1=$(free_port); P2=$(free_port)
NODE_PLAIN=()   # newer nodes want --plain to confirm a trusted network
"$BIN/flashpool-node" --help | grep -q -- '--plain' && NODE_PLAIN=(--plain)
E1="tcp://127.0.0.1:$P1"; E2="tcp://127.0.0.1:$P2"
"$BIN/flashpool-node" -m "$M" -l "$E1" -t "$NODE_T" -n n1 "${NODE_PLAIN[@]}" > "$O/n1.log" 2>&1 & PIDS+=($!); N1=$!
"$BIN/flashpool-node" -m "$M" -l "$E2" -t "$NODE_T" -n n2 "${NODE_PLAIN[@]}" > "$O/n2.log" 2>&1 & PIDS+=($!); N2=$!
sleep 1
BENCH=("$BIN/flashpool-bench" -m "$M" --frontiers 64 --gen "$GEN" --chunk 64 --membw-mb 64)
echo
echo "== decode tok/s (flashpool-bench --frontiers 64 --gen $GEN), runs interleaved"
for r in $(seq "$REPS"); do
  "${BENCH[@]}" -t "$COORD_T" > "$O/single.$r.csv" 2> "$O/single.$r.log"
  "${BENCH[@]}" -t "$COORD_T" --plain --node "$E1" --node "$E2" --pool-stats > "$O/pool.$r.csv" 2> "$O/pool.$r.log"
  s=$(tail -1 "$O/single.$r.csv" | cut -d, -f9); p=$(tail -1 "$O/pool.$r.csv" | cut -d, -f9)
  echo "$s" >> "$O/single.tps"; echo "$p" >> "$O/pool.tps"
  echo "$s $p" | awk '{printf "  run %d: single %.3f tok/s, pool %.3f tok/s, ratio %.3f\n", '"$r"', $1, $2, $2/$1}'
  grep -o 'one-token layers: .*' "$O/pool.$r.log" | sed 's/^/    /' || true
  grep -o 'node [^ ]* up: .*rtt [0-9.]* ms, compute [0-9.]* ms' "$O/pool.$r.log" | sed 's/^/    /' || true
done
echo "  single-process tok/s: $(stats3 < "$O/single.tps")"
echo "  2 nodes tok/s:        $(stats3 < "$O/pool.tps")"
echo "  ratio of medians:     $(paste <(sort -g "$O/pool.tps") <(sort -g "$O/single.tps") | awk '{p[NR]=$1; s[NR]=$2} END {m=int((NR+1)/2); printf "%.3f", p[m]/s[m]}')"
sed -n 's/.*one-token layers: dispatch->last combine \([0-9.]*\) ms, of which node compute \([0-9.]*\) ms, network + protocol \([0-9.]*\) ms.*/\1 \2 \3/p' \
  "$O"/pool.*.log > "$O/layers"
rtt3=$(awk -F, '$6 == 3 {print $11}' "$O/rtt.csv" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "  per-layer network+protocol (ms): $(cut -d' ' -f3 "$O/layers" | stats3)"
echo "  per-layer dispatch->last combine (ms): $(cut -d' ' -f1 "$O/layers" | stats3)"
echo "  raw RTT p50, 3 items (us): $rtt3"
awk -v r="$rtt3" '{n++; s+=$3} END {printf "  ratio (mean network+protocol per layer) / (raw RTT p50) = %.2f\n", s/n*1000/r}' "$O/layers"

# ---- 3. memory.
echo
echo "== memory"
for n in 1 2; do
  pid=$([ $n = 1 ] && echo "$N1" || echo "$N2")
  held=$(grep -o 'holding [0-9]* experts, [0-9.]* MiB' "$O/n$n.log" | tail -1)
  hm=$(echo "$held" | awk '{print $4}')
  rss=$(kib VmRSS "$pid"); hwm=$(kib VmHWM "$pid")
  echo "  node n$n: $held; VmRSS $(mib "$rss") MiB, VmHWM $(mib "$hwm") MiB, overhead (HWM - experts) $(awk -v h="$hwm" -v e="$hm" 'BEGIN {printf "%.1f", h/1024 - e}') MiB"
done
# the coordinator: flashpool itself (flashpool-bench adds a bandwidth buffer)
seq 1000 1063 > "$O/tokens.txt"
# tensor lines end in "<bytes> bytes"
"$BIN/flashpool-gguf" --tensors "$M" | awk '$NF == "bytes" && $2 ~ /^[A-Z]/ {
    if ($1 ~ /_exps\./) e += $(NF-1); else if ($1 == "token_embd.weight") t += $(NF-1); else d += $(NF-1) }
  END {printf "  tensors: dense %.1f MiB (of which token_embd %.1f MiB, read only row by row through the mmap), routed experts %.1f MiB\n", (d+t)/1048576, t/1048576, e/1048576}'
coord_mem() {  # label, extra args...
  local label="$1"; shift
  /usr/bin/time -f '%M' -o "$O/time.out" "$BIN/flashpool" -m "$M" --tokens "$O/tokens.txt" -n 16 --greedy \
    -t "$COORD_T" --ctx 256 --pool-stats "$@" > "$O/coord.out" 2> "$O/coord.log" \
    || { echo "figures.sh: coordinator run '$label' failed:" >&2; cat "$O/coord.log" >&2; exit 1; }
  echo "  coordinator, $label: max RSS $(mib "$(tail -1 "$O/time.out")") MiB"
  grep -o 'weights mapped.*' "$O/coord.log" | head -1 | sed 's/^/    /' || true
}
coord_mem "all experts remote, no cache" --plain --node "$E1" --node "$E2"
coord_mem "all experts remote, --expert-cache-mb 64" --plain --node "$E1" --node "$E2" --expert-cache-mb 64
coord_mem "no nodes, --expert-cache-mb 64 (SSD streaming)" --expert-cache-mb 64
coord_mem "single process, all experts in RAM" 

# ---- 4. cache hit rate on a recorded routing trace.
echo
echo "== hot-expert cache hit rate (trace of 64 prompt + 64 decoded tokens)"
"$BIN/flashpool" -q -m "$M" --tokens "$O/tokens.txt" -n 64 --greedy -t "$COORD_T" --ctx 256 \
  --trace-routing "$O/trace.jsonl" > /dev/null 2> "$O/trace.log" || { cat "$O/trace.log" >&2; exit 1; }
"$BIN/flashpool-cachesim" --trace "$O/trace.jsonl" -m "$M" --budgets-mb 14,27,54,108,216 | sed 's/^/  /'
"$BIN/flashpool-cachesim" --trace "$O/trace.jsonl" -m "$M" --budgets-mb 14,27,54,108,216 --per-token | sed 's/^/  /'
