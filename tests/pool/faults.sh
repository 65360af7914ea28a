#!/usr/bin/env bash
# Fault and security tests of the pool with real processes (design.md §6-7,
# docs/resilience.md), run at the end of tests/pool/run.sh:
#   - a node killed (-9), paused (SIGSTOP ... SIGCONT), drained (SIGUSR1 ...
#     SIGUSR2), and its veth link cut then restored (network namespaces) in
#     the middle of a one-token-at-a-time run: the logits are BIT-IDENTICAL
#     to the single-process run, the node is used again after it returns,
#     and the worst stall (the longest one layer waited, failover included:
#     "pool: worst layer stall" of --pool-stats) is printed and must stay
#     under FP_STALL_MAX_MS (default 2000);
#   - the coordinator paused: nodes (--peer-timeout-s) forget it, it rejoins;
#   - CurveZMQ: right keys give identical logits; a coordinator whose key the
#     node does not allow, and one that expects another node key, exchange
#     not a single frame (the node refused none and served none) and fail
#     with a clear error.
#
# usage: tests/pool/faults.sh [BUILD_DIR]   (FP_VECTORS, FP_POOL_SKIP_NETNS as run.sh)
set -uo pipefail
B=${1:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VEC=${FP_VECTORS:-$ROOT/../shared/vectors}
FP="$ROOT/$B/flashpool"
NODE="$ROOT/$B/flashpool-node"
KEYGEN="$ROOT/$B/flashpool-keygen"
OUT=$(mktemp -d /tmp/fp-faults.XXXXXX)
TAG=ff$$
NS_MADE=()
PIDS=()
T0=$(date +%s)
STALL_MAX=${FP_STALL_MAX_MS:-2000}

cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; kill -CONT "$p" 2>/dev/null; done
  wait 2>/dev/null
  for ns in "${NS_MADE[@]}"; do ip netns del "$ns" 2>/dev/null; done
  rm -rf "$OUT"
}
trap cleanup EXIT INT TERM

[ -d "$VEC" ] || { echo "faults: $VEC not found (set FP_VECTORS)"; exit 1; }
for b in "$FP" "$NODE" "$KEYGEN"; do [ -x "$b" ] || { echo "faults: $b missing (run make)"; exit 1; }; done

pass=0; fail=0
ok()  { pass=$((pass+1)); echo "  ok   $1"; }
bad() { fail=$((fail+1)); echo "  FAIL $1"; [ -f "${2:-/dev/null}" ] && sed 's/^/       /' "$2" | tail -20; }
same() {
  if [ -s "$3" ] && cmp -s "$BASE" "$3"; then ok "$1"; else bad "$1 (logits differ from single-process)" "$2"; fi
}
fell_back() { grep -Eq "[1-9][0-9]* fallback items|[1-9][0-9]* re-dispatches" "$1"; }
rejoined() { grep -Eq "[1-9][0-9]* rejoins" "$1"; }
# stall LABEL LOG: print the worst layer stall and check it against STALL_MAX.
STALLS=()
stall() {
  local ms
  ms=$(sed -n 's/^pool: worst layer stall \([0-9.]*\) ms.*/\1/p' "$2" | tail -1)
  if [ -z "$ms" ]; then bad "$1: no stall figure in the log" "$2"; return; fi
  STALLS+=("$1: ${ms} ms")
  echo "       worst stall ($1): $ms ms"
  awk -v m="$ms" -v x="$STALL_MAX" 'BEGIN { exit !(m < x) }' && ok "$1: worst stall $ms ms < $STALL_MAX ms" \
    || bad "$1: worst stall $ms ms >= $STALL_MAX ms" "$2"
}

# metric FILE SAMPLE: the value of one sample line of a --pool-metrics file ("" if absent).
metric() { awk -v k="$2" 'substr($0, 1, length(k) + 1) == k " " { print $NF }' "$1"; }
# metric_ge LABEL FILE SAMPLE MIN
metric_ge() {
  local v; v=$(metric "$2" "$3")
  if [ -n "$v" ] && awk -v v="$v" -v m="$4" 'BEGIN { exit !(v >= m) }'; then ok "$1 ($3 = $v)"
  else bad "$1 ($3 = '${v}', want >= $4)" "$2"; fi
}

COORD_NS=""
coord() {
  local log=$1 out=$2; shift 2
  local pre=()
  [ -n "$COORD_NS" ] && pre=(ip netns exec "$COORD_NS")
  "${pre[@]}" "$FP" -m "$M" --tokens "$T" -n 0 --ctx 1024 --threads 1 --dump-logits "$out" --pool-stats "$@" \
      > "$log" 2>&1
}
node_start() {   # NAME ENDPOINT [NETNS] [node flags...]
  local name=$1 ep=$2 ns=${3:-}
  shift 3 2>/dev/null || shift $#
  local pre=()
  [ -n "$ns" ] && pre=(ip netns exec "$ns")
  "${pre[@]}" "$NODE" -m "$M" --listen "$ep" --threads 1 "$@" >> "$OUT/node-$name.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  printf -v "PID_$name" %s "$pid"
  local port=${ep##*:}
  for _ in $(seq 1 200); do
    "${pre[@]}" ss -ltnH "sport = :$port" 2>/dev/null | grep -q . && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "faults: node $name did not start:"; sed 's/^/       /' "$OUT/node-$name.log"
  return 1
}
node_kill() { local v="PID_$1"; kill -9 "${!v}" 2>/dev/null; wait "${!v}" 2>/dev/null; }
node_sig() { local v="PID_$2"; kill "-$1" "${!v}"; }

NAME=tiny-cond-s1
M="$VEC/$NAME.gguf"
# Three copies of the prompt (960 tokens): a one-token-at-a-time run lasts a
# few seconds, long enough for a fault, the failover and the rejoin.
T="$OUT/long.tokens.txt"
for _ in 1 2 3; do cat "$VEC/$NAME.tokens.txt"; done | grep -E '^[0-9]+$' > "$T"
O="$OUT/$NAME"; BASE="$O.single.f32"
echo "faults: $NAME, $(wc -w < "$T") prompt tokens one at a time"
coord "$O.single.log" "$BASE" -q || { bad "single-process baseline" "$O.single.log"; exit 1; }

# below the ephemeral range (32768+) and clear of run.sh's 10000-30000 block
P=$((30100 + ($$ % 100) * 20))
E1=tcp://127.0.0.1:$P; E2=tcp://127.0.0.1:$((P + 1))
FLT=(--decode --node-deadline-ms 300 --node-retry-ms 100)
node_start a "$E1" && node_start b "$E2" || { bad "start 2 nodes"; exit 1; }

# ---- kill -9, replicas: re-dispatch, then the restarted node rejoins -----------
coord "$O.kill.log" "$O.kill.f32" --plain --node "$E1" --node "$E2" --replicas 2 "${FLT[@]}" --pool-metrics "$O.kill.prom" &
CP=$!
sleep 1.0; node_kill b; sleep 0.3; node_start b "$E2"; wait $CP
same "kill -9 mid-run (replicas)" "$O.kill.log" "$O.kill.f32"
fell_back "$O.kill.log" || bad "kill -9: no failover happened" "$O.kill.log"
rejoined "$O.kill.log" && ok "kill -9: restarted node rejoined" || bad "kill -9: no rejoin" "$O.kill.log"
stall "kill -9" "$O.kill.log"
metric_ge "metrics: kill -9 -> failover to replica" "$O.kill.prom" "flashpool_node_failovers_total{node=\"$E2\",to=\"replica\"}" 1
metric_ge "metrics: kill -9 -> rejoin counted" "$O.kill.prom" "flashpool_node_rejoins_total{node=\"$E2\"}" 1
grep -q "warning: --plain" "$O.kill.log" && ok "coordinator warns about --plain" || bad "no --plain warning" "$O.kill.log"
grep -q "WARNING: no --curve-secret" "$OUT/node-a.log" && ok "node warns about plain links" \
  || bad "node: no plain-link warning" "$OUT/node-a.log"

# ---- SIGSTOP for 1 s, no replicas: deadline miss -> disk, late answers dropped, rejoin
coord "$O.stop.log" "$O.stop.f32" --plain --node "$E1" --node "$E2" "${FLT[@]}" --pool-metrics "$O.stop.prom" &
CP=$!
sleep 1.0; node_sig STOP b; sleep 1.0; node_sig CONT b; wait $CP
same "SIGSTOP 1 s mid-run, then SIGCONT (no replicas)" "$O.stop.log" "$O.stop.f32"
fell_back "$O.stop.log" || bad "SIGSTOP: no failover happened" "$O.stop.log"
rejoined "$O.stop.log" && ok "SIGSTOP: node rejoined after SIGCONT" || bad "SIGSTOP: no rejoin" "$O.stop.log"
stall "SIGSTOP" "$O.stop.log"
metric_ge "metrics: SIGSTOP -> deadline miss" "$O.stop.prom" "flashpool_node_deadline_misses_total{node=\"$E2\"}" 1
metric_ge "metrics: SIGSTOP -> failover to local" "$O.stop.prom" "flashpool_node_failovers_total{node=\"$E2\",to=\"local\"}" 1
metric_ge "metrics: SIGSTOP -> node up again at the end" "$O.stop.prom" "flashpool_node_up{node=\"$E2\"}" 1
metric_ge "metrics: dispatch histogram filled" "$O.stop.prom" "flashpool_node_dispatch_seconds_count{node=\"$E1\"}" 1000
[ "$(metric "$O.stop.prom" "flashpool_node_deadline_misses_total{node=\"$E1\"}")" = 0 ] \
  && ok "metrics: the undisturbed node has no deadline miss" || bad "metrics: node a deadline misses" "$O.stop.prom"

# ---- drain (SIGUSR1) with replicas: routed around without a deadline miss; SIGUSR2 -> rejoin
coord "$O.drain.log" "$O.drain.f32" --plain --node "$E1" --node "$E2" --replicas 2 "${FLT[@]}" &
CP=$!
sleep 1.0; node_sig USR1 b; sleep 0.8; node_sig USR2 b; wait $CP
same "drain (SIGUSR1) mid-run, replicas" "$O.drain.log" "$O.drain.f32"
grep -q "is draining" "$O.drain.log" && ok "drain: coordinator saw the announcement" || bad "drain: not announced" "$O.drain.log"
grep -q "no COMBINE for request" "$O.drain.log" && bad "drain: caused a deadline miss" "$O.drain.log"
grep -q "draining: told 1 coordinator" "$OUT/node-b.log" && ok "drain: node told its coordinator" \
  || bad "drain: node log" "$OUT/node-b.log"
rejoined "$O.drain.log" && ok "drain: node rejoined after SIGUSR2" || bad "drain: no rejoin" "$O.drain.log"
stall "drain" "$O.drain.log"
node_kill a; node_kill b

# ---- the coordinator paused (SIGSTOP 2.5 s): a node with --peer-timeout-s 1
# takes it for dead and forgets its HELLO; after SIGCONT the coordinator is
# refused (or misses a deadline), fails over and rejoins: same logits.
node_start a "$E1" "" --peer-timeout-s 1 && node_start b "$E2" "" --peer-timeout-s 1 || bad "start 2 nodes"
coord "$O.cstop.log" "$O.cstop.f32" --plain --node "$E1" --node "$E2" "${FLT[@]}" &
CP=$!
sleep 1.0; FPP=$(pgrep -P $CP | head -1)      # coord runs in a subshell: pause flashpool itself
kill -STOP "$FPP"; sleep 2.5; kill -CONT "$FPP"; wait $CP
same "coordinator paused 2.5 s mid-run" "$O.cstop.log" "$O.cstop.f32"
grep -q "taken for dead" "$OUT/node-a.log" && ok "node took the silent coordinator for dead" \
  || bad "node did not notice the silent coordinator" "$OUT/node-a.log"
rejoined "$O.cstop.log" && ok "coordinator paused: nodes rejoined" || bad "coordinator paused: no rejoin" "$O.cstop.log"
node_kill a; node_kill b

# ---- CurveZMQ -----------------------------------------------------------------
"$KEYGEN" -o "$OUT/coord" 2>/dev/null && "$KEYGEN" -o "$OUT/other" 2>/dev/null && "$KEYGEN" -o "$OUT/node" 2>/dev/null \
  && "$KEYGEN" -o "$OUT/node2" 2>/dev/null || { bad "flashpool-keygen"; exit 1; }
CK=$(cat "$OUT/coord.key"); OK=$(cat "$OUT/other.key"); NK=$(cat "$OUT/node.key")
NP=$(cat "$OUT/node.pub"); N2P=$(cat "$OUT/node2.pub"); CP_=$(cat "$OUT/coord.pub")
[ ${#CK} -eq 40 ] && [ ${#NP} -eq 40 ] && ok "flashpool-keygen writes 40-char Z85 keys" || bad "keygen key length"
E3=tcp://127.0.0.1:$((P + 2)); E4=tcp://127.0.0.1:$((P + 3)); E5=tcp://127.0.0.1:$((P + 4))
node_start good "$E3" "" --curve-secret "$NK" --allow-client "$CP_" || bad "start CURVE node"
coord "$O.curve.log" "$O.curve.f32" -q --curve-secret "$CK" --node "$E3" --node-key "$NP"
same "CurveZMQ link, allowed key" "$O.curve.log" "$O.curve.f32"
# Wrong keys: separate nodes so their counters speak only of these attempts.
# Both wait for the HELLO timeout (10 s), so they run side by side.
node_start w1 "$E4" "" --curve-secret "$NK" --allow-client "$CP_" || bad "start CURVE node w1"
node_start w2 "$E5" "" --curve-secret "$NK" --allow-client "$CP_" || bad "start CURVE node w2"
coord "$O.badc.log" "$O.badc.f32" -q --curve-secret "$OK" --node "$E4" --node-key "$NP" & C1=$!
coord "$O.badn.log" "$O.badn.f32" -q --curve-secret "$CK" --node "$E5" --node-key "$N2P" & C2=$!
wait $C1; r1=$?; wait $C2; r2=$?
kill -TERM "$PID_w1" "$PID_w2"; wait "$PID_w1" "$PID_w2" 2>/dev/null
for c in "badc:coordinator key not allowed by the node:$r1:w1" "badn:coordinator expects another node key:$r2:w2"; do
  IFS=: read -r f what rc nd <<< "$c"
  if [ "$rc" -ne 0 ] && grep -q "no answer to HELLO" "$O.$f.log"; then ok "CURVE, $what: refused with a clear error"
  else bad "CURVE, $what: not refused clearly (rc $rc)" "$O.$f.log"; fi
  [ -s "$O.$f.f32" ] && bad "CURVE, $what: logits were produced"
  if grep -q "stopping: 0 requests, 0 items served, 0 frames refused" "$OUT/node-$nd.log"; then
    ok "CURVE, $what: the node received not a single frame"
  else bad "CURVE, $what: node counters" "$OUT/node-$nd.log"; fi
done
node_kill good

# ---- link down, then up (network namespaces) ----------------------------------
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
    ip -n "$TAG$h" addr add "10.78.0.$i/24" dev "${TAG}$h" && ip -n "$TAG$h" link set "${TAG}$h" up || return 1
    ip -n "$TAG$h" link set lo up || return 1
  done
}
if [ -n "${FP_POOL_SKIP_NETNS:-}" ]; then
  echo "faults: link test skipped (FP_POOL_SKIP_NETNS set)"
elif ! netns_setup 2> "$OUT/netns.log"; then
  echo "faults: link test SKIPPED: cannot create namespaces/veth here ($(head -1 "$OUT/netns.log"))"
else
  N1=tcp://10.78.0.2:7070; N2=tcp://10.78.0.3:7070
  if node_start x "$N1" "${TAG}n1" && node_start y "$N2" "${TAG}n2"; then
    COORD_NS="${TAG}c"
    coord "$O.cut.log" "$O.cut.f32" --plain --node "$N1" --node "$N2" "${FLT[@]}" &
    CP=$!
    sleep 1.0; ip -n "${TAG}n2" link set "${TAG}n2" down; sleep 1.0; ip -n "${TAG}n2" link set "${TAG}n2" up; wait $CP
    same "netns: link down 1 s mid-run, then up" "$O.cut.log" "$O.cut.f32"
    fell_back "$O.cut.log" || bad "link down: no failover happened" "$O.cut.log"
    rejoined "$O.cut.log" && ok "link down: node rejoined after the link came back" \
      || bad "link down: no rejoin" "$O.cut.log"
    stall "link down" "$O.cut.log"
    COORD_NS=""
  else
    bad "start nodes in namespaces"
  fi
fi

echo "faults: worst stalls (--node-deadline-ms 300): ${STALLS[*]/%/;}"
echo "faults: $pass passed, $fail failed ($(( $(date +%s) - T0 )) s)"
[ "$fail" -eq 0 ]
