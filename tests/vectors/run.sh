#!/usr/bin/env bash
# Reference-vector checks: run the engine on each tiny model of
# ../shared/vectors and judge it with ../shared/tools at the thresholds of
# NAME.tolerance.json (decode logits, prefill-last logits, per-layer dump,
# routing trace). Also asserts that batched prefill and one-token decode give
# bit-identical logits at every position.
#
# usage: tests/vectors/run.sh [BUILD_DIR]     (FP_VECTORS overrides ../shared/vectors)
set -euo pipefail
B=${1:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VEC=${FP_VECTORS:-$ROOT/../shared/vectors}
TOOLS=${FP_TOOLS:-$ROOT/../shared/tools}
PY=/usr/bin/python3
FP="$ROOT/$B/flashpool"
OUT=$(mktemp -d /tmp/fp-vectors.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
[ -d "$VEC" ] || { echo "vectors: $VEC not found (set FP_VECTORS)"; exit 1; }

pass=0; fail=0
check() {  # name, command...
  local name=$1; shift
  if "$@" > "$OUT/log.txt" 2>&1; then
    pass=$((pass+1)); echo "  ok   $name"
  else
    fail=$((fail+1)); echo "  FAIL $name"; sed 's/^/       /' "$OUT/log.txt" | tail -25
  fi
}
thr() { $PY -c "import json,sys;t=json.load(open('$VEC/$1.tolerance.json'))['thresholds'];print(eval(sys.argv[1]))" "$2"; }

for NAME in tiny-cond-s1 tiny-s1; do
  echo "vectors: $NAME"
  M="$VEC/$NAME.gguf"; T="$VEC/$NAME.tokens.txt"; O="$OUT/$NAME"
  POS=$($PY -c "import json;print(json.load(open('$VEC/$NAME.tolerance.json'))['layer_dump_positions'])")
  "$FP" -q -m "$M" --tokens "$T" -n 0 --ctx 4096 --decode --dump-logits "$O.decode.f32" \
      --dump-prefix "$O" --dump-positions "$POS" --dump-trace
  "$FP" -q -m "$M" --tokens "$T" -n 0 --ctx 4096 --chunk 128 --dump-logits "$O.prefill.f32" \
      --prefill-logits "$O.prefill-last.f32"
  V=$(thr $NAME "512")
  args=(--max-mean-kl "$(thr $NAME "t['logits']['max_mean_kl']")" --min-top1 "$(thr $NAME "t['logits']['min_top1_pct']")"
        --max-median-abs "$(thr $NAME "t['logits']['max_median_maxabs']")")
  if [ "$NAME" = tiny-cond-s1 ]; then
    args+=(--max-p90-abs "$(thr $NAME "t['logits']['max_p90_maxabs']")" --max-kl "$(thr $NAME "t['logits']['max_kl']")")
    check "decode logits" $PY "$TOOLS/compare_logits.py" "$VEC/$NAME.decode.f32" "$O.decode.f32" "$V" -q "${args[@]}"
    check "decode logits, near-ties excluded" $PY "$TOOLS/compare_logits.py" "$VEC/$NAME.decode.f32" "$O.decode.f32" "$V" -q \
        --tie-margin 0.02 --min-top1 100
    check "prefill-last logits" $PY "$TOOLS/compare_logits.py" "$VEC/$NAME.prefill-last.f32" "$O.prefill-last.f32" "$V" -q \
        --max-kl "$(thr $NAME "t['prefill_last']['max_kl']")" --max-abs "$(thr $NAME "t['prefill_last']['max_abs']")" --min-top1 100
    check "routing trace" $PY "$TOOLS/compare_routing.py" "$VEC/$NAME.trace.json" "$O.trace.json" \
        --min-expert-match "$(thr $NAME "t['routing']['min_expert_set_match_pct']")" \
        --min-indexer-match "$(thr $NAME "t['routing']['min_indexer_match_pct']")"
  else
    check "decode logits" $PY "$TOOLS/compare_logits.py" "$VEC/$NAME.decode.f32" "$O.decode.f32" "$V" -q "${args[@]}"
    check "prefill-last logits" $PY "$TOOLS/compare_logits.py" "$VEC/$NAME.prefill-last.f32" "$O.prefill-last.f32" "$V" -q \
        --max-kl "$(thr $NAME "t['prefill_last']['max_kl']")"
    check "routing trace" $PY "$TOOLS/compare_routing.py" "$VEC/$NAME.trace.json" "$O.trace.json" \
        --min-expert-match "$(thr $NAME "t['routing']['min_expert_set_match_pct']")"
  fi
  check "per-layer dump" $PY "$TOOLS/compare_layers.py" "$VEC/$NAME.layers.json" "$O.layers.json" \
      --envelope "$VEC/$NAME.fastmath.layers.json" --max-ratio 3 --floor 1e-4
  check "prefill == decode, every position, bit for bit" cmp "$O.decode.f32" "$O.prefill.f32"
done
echo "vectors: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
