#!/usr/bin/env bash
# End-to-end KV cache checks across process restarts, on the tiny model:
#   1. a cold 2100-token prompt (cold checkpoint at 2048, shutdown save 2100);
#  1s. the same prompt in a new process: all 2100 tokens from disk, nothing
#      evaluated, logits identical to run 1;
#   2. a new process with that prompt + 16 tokens loads 2100 tokens from disk,
#      evaluates 16, and its logits equal a cold run of the same prompt (3);
#   4. with the 2100 checkpoint's payload corrupted, the next process rejects
#      it, falls back to the 2048 one, and still gets the same logits.
# Prints the prefill time ratio (run 2 / run 1).
#
# usage: tests/kv/run.sh [BUILD_DIR]     (FP_VECTORS overrides ../shared/vectors)
set -euo pipefail
B=${1:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VEC=${FP_VECTORS:-$ROOT/../shared/vectors}
M="$VEC/tiny-cond-s1.gguf"
OUT=$(mktemp -d /tmp/fp-kv.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
[ -f "$M" ] || { echo "kv: $M not found (set FP_VECTORS)"; exit 1; }
[ -f "$ROOT/$B/libflashpool.a" ] || { echo "kv: $ROOT/$B/libflashpool.a missing (run make first)"; exit 1; }

# Same flags and libraries as the Makefile's binaries.
gcc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -ffp-contract=off -fno-strict-aliasing -pthread \
    -I"$ROOT/common" -I"$ROOT/coordinator" "$ROOT/tests/kv/kv_restart.c" "$ROOT/$B/libflashpool.a" \
    -o "$OUT/kv_restart" \
    -lzmq -lsodium -lprotobuf-c -lcjson -lmicrohttpd -lpcre2-8 -lcrypto -luring -libverbs -lrdmacm -lvulkan -lm -lpthread
BIN="$OUT/kv_restart"
DIR="$OUT/kvdir"
N=2100
field() { sed -n "s/.*\<$1=\([^ ]*\).*/\1/p" <<<"$2"; }
fail() { echo "kv: FAIL $*"; exit 1; }

r1=$("$BIN" -m "$M" --kv-disk-dir "$DIR" -n $N)
echo "  run 1 (cold):     $r1"
[ "$(field source "$r1")" = none ] || fail "run 1 should be a cold start"
ls "$DIR"/*.fpkv >/dev/null || fail "no checkpoint written"
[ "$(ls "$DIR"/*.fpkv | wc -l)" = 2 ] || fail "expected the cold (2048) and shutdown (2100) checkpoints"

r1s=$("$BIN" -m "$M" --kv-disk-dir "$DIR" -n $N)
echo "  run 1s (same):    $r1s"
[ "$(field source "$r1s")" = disk ] && [ "$(field cached "$r1s")" = $N ] || fail "run 1s should load all $N tokens"
[ "$(field evaluated "$r1s")" = 0 ] || fail "run 1s should evaluate nothing"
[ "$(field logits_sha256 "$r1s")" = "$(field logits_sha256 "$r1")" ] || fail "restored logits differ from run 1"

r2=$("$BIN" -m "$M" --kv-disk-dir "$DIR" -n $((N + 16)))
echo "  run 2 (restart):  $r2"
[ "$(field source "$r2")" = disk ] || fail "run 2 should load from disk"
[ "$(field cached "$r2")" = $N ] || fail "run 2 should reuse $N tokens"
[ "$(field evaluated "$r2")" = 16 ] || fail "run 2 should evaluate only the 16 new tokens"

r3=$("$BIN" -m "$M" -n $((N + 16)))
echo "  run 3 (no cache): $r3"
[ "$(field logits_sha256 "$r2")" = "$(field logits_sha256 "$r3")" ] || fail "restored logits differ from a cold run"

# Corrupt one payload byte of the 2100-token checkpoint (and drop the newer
# shutdown save of run 2) so the lookup must reject it and fall back.
rm -f "$OUT/kvdir2" && mkdir "$OUT/kvdir2"
r1b=$("$BIN" -m "$M" --kv-disk-dir "$OUT/kvdir2" -n $N)
big=$(ls -S "$OUT/kvdir2"/*.fpkv | head -1)
printf '\x5a' | dd of="$big" bs=1 seek=100000 conv=notrunc status=none
r4=$("$BIN" -m "$M" --kv-disk-dir "$OUT/kvdir2" -n $((N + 16)) -v 2>"$OUT/log4")
echo "  run 4 (corrupt):  $r4"
grep -q "payload checksum mismatch" "$OUT/log4" || fail "corrupt checkpoint not reported"
[ "$(field cached "$r4")" = 2048 ] || fail "run 4 should fall back to the 2048-token checkpoint"
[ "$(field logits_sha256 "$r4")" = "$(field logits_sha256 "$r3")" ] || fail "fallback logits differ"
: "$r1b"

t1=$(field prefill_ms "$r1"); t1s=$(field total_ms "$r1s"); t2=$(field total_ms "$r2")
echo "kv: ok; time to a ready session after restart / cold prefill of $N tokens:"
echo "kv:   same prompt:      $(awk "BEGIN{printf \"%.4f\", $t1s/$t1}") ($t1s ms / $t1 ms)"
echo "kv:   prompt + 16 more: $(awk "BEGIN{printf \"%.4f\", $t2/$t1}") ($t2 ms / $t1 ms)"
