#!/usr/bin/env bash
# Pool tests with real processes (design.md §3, §6, §11): a coordinator
# (build/flashpool --tokens ... --dump-logits ...) and flashpool-node
# processes, on loopback and across network namespaces. For both vector sets
# and several placements (all remote, mixed with the hot-expert cache,
# replicas, coordinator-only experts), the dumped logits must be
# BIT-IDENTICAL (cmp) to the single-process run; so must SSD streaming with a
# cache far smaller than the experts, and runs where a node is killed or its
# link is cut mid-run (disk / replica fallback, then rejoin).
#
# usage: tests/pool/run.sh [BUILD_DIR]      (FP_VECTORS overrides ../shared/vectors)
#        FP_POOL_SKIP_NETNS=1 skips the namespace tests.
set -uo pipefail
B=${1:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VEC=${FP_VECTORS:-$ROOT/../shared/vectors}
FP="$ROOT/$B/flashpool"
NODE="$ROOT/$B/flashpool-node"
OUT=$(mktemp -d /tmp/fp-pool.XXXXXX)
TAG=fp$$                      # prefix of every namespace and link this run creates
NS_MADE=()
PIDS=()
T0=$(date +%s)

cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  for ns in "${NS_MADE[@]}"; do ip netns del "$ns" 2>/dev/null; done
  rm -rf "$OUT"
}
trap cleanup EXIT INT TERM

[ -d "$VEC" ] || { echo "pool: $VEC not found (set FP_VECTORS)"; exit 1; }
for b in "$FP" "$NODE"; do [ -x "$b" ] || { echo "pool: $b missing (run make)"; exit 1; }; done

pass=0; fail=0
ok()  { pass=$((pass+1)); echo "  ok   $1"; }
bad() { fail=$((fail+1)); echo "  FAIL $1"; [ -f "${2:-/dev/null}" ] && sed 's/^/       /' "$2" | tail -20; }

# same NAME LOG FILE: FILE must equal the set's single-process logits.
same() {
  if [ -s "$3" ] && cmp -s "$BASE" "$3"; then ok "$1"; else bad "$1 (logits differ from single-process)" "$2"; fi
}
# fell_back LOG: the run really failed over (guards against a vacuous pass).
fell_back() { grep -Eq "[1-9][0-9]* fallback items" "$1"; }

# coord LOG OUTFILE [flashpool flags...]: the coordinator on the current set
# (batched prefill unless --decode is passed), inside netns $COORD_NS if set.
COORD_NS=""
coord() {
  local log=$1 out=$2; shift 2
  local pre=()
  [ -n "$COORD_NS" ] && pre=(ip netns exec "$COORD_NS")
  "${pre[@]}" "$FP" -q -m "$M" --tokens "$T" -n 0 --ctx 1024 --threads 1 --dump-logits "$out" --pool-stats "$@" \
      > "$log" 2>&1
}

# node_start NAME ENDPOINT [NETNS]: start a node and wait until it listens.
node_start() {
  local name=$1 ep=$2 ns=${3:-}
  local pre=()
  [ -n "$ns" ] && pre=(ip netns exec "$ns")
  "${pre[@]}" "$NODE" -m "$M" --listen "$ep" --threads 1 >> "$OUT/node-$name.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  printf -v "PID_$name" %s "$pid"
  local port=${ep##*:}
  for _ in $(seq 1 200); do
    "${pre[@]}" ss -ltnH "sport = :$port" 2>/dev/null | grep -q . && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "pool: node $name did not start:"; sed 's/^/       /' "$OUT/node-$name.log"
  return 1
}
node_kill() { local v="PID_$1"; kill -9 "${!v}" 2>/dev/null; wait "${!v}" 2>/dev/null; }

# below the ephemeral range (32768+), where client sockets of other tests could hold the port
PORT0=$((10000 + ($$ % 1000) * 20))

for NAME in tiny-cond-s1 tiny-s1; do
  echo "pool: $NAME"
  M="$VEC/$NAME.gguf"; T="$VEC/$NAME.tokens.txt"; O="$OUT/$NAME"
  BASE="$O.single.f32"
  if ! coord "$O.single.log" "$BASE"; then bad "single-process baseline" "$O.single.log"; continue; fi

  # ---- one process, no nodes: hot-expert cache + SSD streaming --------------
  coord "$O.ssd.log" "$O.ssd.f32" --expert-cache-mb 0.2
  same "SSD streaming, cache 0.2 MiB of 4.2 MiB experts" "$O.ssd.log" "$O.ssd.f32"
  coord "$O.ssd0.log" "$O.ssd0.f32" --expert-cache-mb 0 --no-io-uring --decode --threads 2
  same "SSD streaming, no cache, pread, one token at a time, 2 threads" "$O.ssd0.log" "$O.ssd0.f32"
  coord "$O.lru.log" "$O.lru.f32" --expert-cache-mb 1 --cache-policy lru --chunk 64
  same "cache 1 MiB LRU, prefill chunks of 64" "$O.lru.log" "$O.lru.f32"

  # ---- loopback: three nodes --------------------------------------------------
  P=$PORT0; PORT0=$((PORT0 + 10))
  E1=tcp://127.0.0.1:$P; E2=tcp://127.0.0.1:$((P + 1)); E3=tcp://127.0.0.1:$((P + 2))
  node_start a "$E1" && node_start b "$E2" && node_start c "$E3" || { bad "start 3 nodes"; continue; }
  coord "$O.rr.log" "$O.rr.f32" --plain --node "$E1" --node "$E2" --node "$E3"
  same "3 nodes, round-robin, every expert remote" "$O.rr.log" "$O.rr.f32"
  grep -q "0.0% cached, 0.0% disk, 100.0% remote" "$O.rr.log" || bad "3 nodes round-robin: not all remote" "$O.rr.log"
  coord "$O.ct.log" "$O.ct.f32" --plain --node "$E1" --node "$E2" --placement contiguous --chunk 100
  same "2 nodes, contiguous by layer, prefill chunks of 100" "$O.ct.log" "$O.ct.f32"
  coord "$O.mix.log" "$O.mix.f32" --plain --node "$E1" --node "$E2" --node "$E3" --replicas 2 --expert-cache-mb 1
  same "3 nodes, 2 replicas, 1 MiB hot-expert cache" "$O.mix.log" "$O.mix.f32"
  grep -Eq "[1-9][0-9.]*% cached" "$O.mix.log" || bad "mixed run used no cached expert" "$O.mix.log"

  # shm:// (memfd rings with the RDMA transport's one-sided protocol, proto/ring.c):
  # two nodes on this host, every expert remote. Listening = abstract socket @flashpool-shm:NAME.
  SH1=shm://$TAG-$NAME-a; SH2=shm://$TAG-$NAME-b; SHP=()
  for s in "$SH1" "$SH2"; do
    "$NODE" -m "$M" --listen "$s" --threads 1 >> "$OUT/node-shm.log" 2>&1 & SHP+=($!); PIDS+=($!)
    for _ in $(seq 1 200); do ss -xlH 2>/dev/null | grep -q "@flashpool-shm:${s#shm://} " && break; sleep 0.05; done
  done
  coord "$O.shm.log" "$O.shm.f32" --plain --node "$SH1" --node "$SH2"
  same "2 nodes over shm://, every expert remote" "$O.shm.log" "$O.shm.f32"
  grep -q "100.0% remote" "$O.shm.log" || bad "shm:// run: not all remote" "$O.shm.log"
  kill "${SHP[@]}" 2>/dev/null; wait "${SHP[@]}" 2>/dev/null

  # A user-edited placement: names from a cluster file, replicas, and experts
  # left to the coordinator ([] = cache or disk).
  cat > "$O.cluster.json" <<EOF
{"format": "flashpool-cluster", "version": 1, "nodes": [
  {"name": "alpha", "endpoint": "$E1", "ram_mb": 64},
  {"name": "beta",  "endpoint": "$E2", "ram_mb": 64}]}
EOF
  python3 - "$O.place.json" <<'EOF'
import json, sys
layers = []
for l in range(5):
    row = []
    for e in range(16):
        k = (l * 16 + e) % 4
        row.append([] if k == 0 else ["alpha"] if k == 1 else ["beta"] if k == 2 else ["beta", "alpha"])
    layers.append(row)
json.dump({"format": "flashpool-placement", "version": 1, "n_layer": 5, "n_expert": 16,
           "nodes": ["alpha", "beta"], "layers": layers}, open(sys.argv[1], "w"))
EOF
  coord "$O.file.log" "$O.file.f32" --plain --cluster "$O.cluster.json" --placement "$O.place.json" \
      --save-placement "$O.saved.json"
  same "placement file: names, replicas, coordinator-only experts" "$O.file.log" "$O.file.f32"
  coord "$O.file2.log" "$O.file2.f32" --plain --cluster "$O.cluster.json" --placement "$O.saved.json" --decode
  same "the saved placement again, one token at a time" "$O.file2.log" "$O.file2.f32"

  # ---- failures ---------------------------------------------------------------
  # A node killed mid-run: its experts have no replica -> disk fallback.
  coord "$O.kill.log" "$O.kill.f32" --plain --node "$E1" --node "$E2" --decode --node-deadline-ms 300 &
  CP=$!
  sleep 0.7; node_kill b; wait $CP
  same "node killed mid-run, no replica: disk fallback" "$O.kill.log" "$O.kill.f32"
  fell_back "$O.kill.log" || bad "node kill: no fallback happened (killed too late?)" "$O.kill.log"
  # With replicas: killed node's work goes to the other holder; the node comes
  # back during the run and rejoins.
  coord "$O.rep.log" "$O.rep.f32" --plain --node "$E1" --node "$E3" --replicas 2 --decode --node-deadline-ms 300 \
      --node-retry-ms 100 &
  CP=$!
  sleep 0.7; node_kill c; node_start c "$E3"; wait $CP
  same "node killed mid-run, replicas: re-dispatch, rejoin" "$O.rep.log" "$O.rep.f32"
  grep -Eq "[1-9][0-9]* re-dispatches" "$O.rep.log" || bad "replica run: no re-dispatch happened" "$O.rep.log"
  grep -Eq "[1-9][0-9]* rejoins" "$O.rep.log" || bad "replica run: the restarted node did not rejoin" "$O.rep.log"
  # A coordinator pointed at a node that is not running fails clearly (once:
  # it waits for the HELLO timeout).
  if [ "$NAME" != tiny-cond-s1 ]; then :
  elif "$FP" -q -m "$M" --tokens "$T" -n 0 --plain --node tcp://127.0.0.1:$((P + 7)) > "$O.none.log" 2>&1; then
    bad "unreachable node at start accepted" "$O.none.log"
  elif grep -q "no answer to HELLO" "$O.none.log"; then ok "unreachable node at start: clear error"
  else bad "unreachable node at start: unclear error" "$O.none.log"; fi
  node_kill a; node_kill c
done

# ---- network namespaces: coordinator and nodes as separate hosts -------------
netns_setup() {
  ip netns add "${TAG}sw" 2>/dev/null || return 1
  NS_MADE+=("${TAG}sw")
  ip -n "${TAG}sw" link add br0 type bridge && ip -n "${TAG}sw" link set br0 up || return 1
  local i=0
  for h in c n1 n2; do
    i=$((i + 1))
    ip netns add "$TAG$h" || return 1
    NS_MADE+=("$TAG$h")
    ip link add "${TAG}$h" type veth peer name "${TAG}${h}p" || return 1
    ip link set "${TAG}$h" netns "$TAG$h" && ip link set "${TAG}${h}p" netns "${TAG}sw" || return 1
    ip -n "${TAG}sw" link set "${TAG}${h}p" master br0 && ip -n "${TAG}sw" link set "${TAG}${h}p" up || return 1
    ip -n "$TAG$h" addr add "10.77.0.$i/24" dev "${TAG}$h" && ip -n "$TAG$h" link set "${TAG}$h" up || return 1
    ip -n "$TAG$h" link set lo up || return 1
  done
}

if [ -n "${FP_POOL_SKIP_NETNS:-}" ]; then
  echo "pool: network namespace tests skipped (FP_POOL_SKIP_NETNS set)"
elif ! netns_setup 2> "$OUT/netns.log"; then
  echo "pool: network namespace tests SKIPPED: cannot create namespaces/veth here ($(head -1 "$OUT/netns.log"))"
else
  NAME=tiny-cond-s1
  echo "pool: $NAME across network namespaces (10.77.0.1 coordinator, .2 and .3 nodes)"
  M="$VEC/$NAME.gguf"; T="$VEC/$NAME.tokens.txt"; O="$OUT/$NAME"; BASE="$O.single.f32"
  N1=tcp://10.77.0.2:7070; N2=tcp://10.77.0.3:7070
  if node_start x "$N1" "${TAG}n1" && node_start y "$N2" "${TAG}n2"; then
    COORD_NS="${TAG}c"
    coord "$O.ns.log" "$O.ns.f32" --plain --node "$N1" --node "$N2" --replicas 2
    same "netns: 2 nodes on their own hosts, 2 replicas" "$O.ns.log" "$O.ns.f32"
    coord "$O.cut.log" "$O.cut.f32" --plain --node "$N1" --node "$N2" --decode --node-deadline-ms 300 &
    CP=$!
    sleep 0.7; ip -n "${TAG}n2" link set "${TAG}n2" down; wait $CP
    same "netns: link to a node cut mid-run" "$O.cut.log" "$O.cut.f32"
    fell_back "$O.cut.log" || bad "link cut: no fallback happened" "$O.cut.log"
    COORD_NS=""
  else
    bad "start nodes in namespaces"
  fi
fi

# ---- fault, drain and CurveZMQ tests (kill -9, SIGSTOP, SIGUSR1 drain, link
# down/up, wrong keys; worst stalls printed): tests/pool/faults.sh ----------
if bash "$ROOT/tests/pool/faults.sh" "$B"; then ok "tests/pool/faults.sh"; else bad "tests/pool/faults.sh"; fi

echo "pool: $pass passed, $fail failed ($(( $(date +%s) - T0 )) s)"
[ "$fail" -eq 0 ]
