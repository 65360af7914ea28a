#!/usr/bin/env bash
# Tokenizer cross-check: flashpool's C tokenizer (build/flashpool-tokenize)
# against Hugging Face tokenizers.js (@huggingface/transformers from npm,
# pinned by package-lock.json, installed into tests/tokenizer/node_modules).
#
# Two vocabularies: the tiny-s1 test model's (512 tokens, ~100 merges) and a
# synthetic one trained here (6 000 merges over a seeded multilingual corpus:
# CJK, code, emoji, ...). Both are checked on the same seeded corpus of
# ~2 600 strings (check.mjs lists what is compared). Deterministic; ~20 s
# the first time (npm install), a few seconds after.
#
# usage: tests/tokenizer/run.sh [BUILD_DIR]     (FP_VECTORS overrides ../shared/vectors)
set -euo pipefail
B=${1:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/tests/tokenizer
VEC=${FP_VECTORS:-$ROOT/../shared/vectors}
case $B in /*) TOOL=$B/flashpool-tokenize ;; *) TOOL=$ROOT/$B/flashpool-tokenize ;; esac

[ -x "$TOOL" ] || { echo "tokenizer: $TOOL not found; build it first: make $B/flashpool-tokenize"; exit 1; }
command -v node >/dev/null && command -v npm >/dev/null ||
  { echo "tokenizer: node/npm not installed; run deploy/install-deps.sh"; exit 1; }
[ -f "$VEC/tiny-s1.gguf" ] || { echo "tokenizer: $VEC/tiny-s1.gguf not found (set FP_VECTORS)"; exit 1; }

# Install (or repair) the pinned npm packages. .npmrc disables install
# scripts: onnxruntime-node's would download GPU binaries we never use.
if ! (cd "$HERE" && npm ls --depth=0 >/dev/null 2>&1); then
  echo "tokenizer: installing @huggingface/transformers into tests/tokenizer/node_modules (npm ci)"
  if ! (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error); then
    if ! npm ping >/dev/null 2>&1; then
      echo "tokenizer: SKIP: the npm registry is unreachable, so tokenizers.js cannot be installed"
      exit 0
    fi
    echo "tokenizer: npm ci failed although the registry answers"; exit 1
  fi
fi

OUT=$(mktemp -d /tmp/fp-tokenizer.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
cd "$HERE"
node corpus.mjs --seed 20261122 --count 2500 > "$OUT/corpus.jsonl"
node corpus.mjs --seed 7 --count 20000 --train > "$OUT/train.txt"
"$TOOL" train --corpus "$OUT/train.txt" --merges 6000 --out "$OUT/synth.gguf" 2>/dev/null
nv=$("$TOOL" info -m "$OUT/synth.gguf" | awk '$1 == "vocab" {print $2}')
[ "${nv:-0}" -ge 5000 ] ||
  { echo "tokenizer: the synthetic vocabulary has only ${nv:-0} tokens; the corpus is too small to learn 6000 merges"; exit 1; }

fail=0
node check.mjs --tool "$TOOL" --gguf "$VEC/tiny-s1.gguf" --corpus "$OUT/corpus.jsonl" || fail=1
node check.mjs --tool "$TOOL" --gguf "$OUT/synth.gguf" --corpus "$OUT/corpus.jsonl" || fail=1
if [ $fail -eq 0 ]; then echo "tokenizer: identical to tokenizers.js on both vocabularies"; else echo "tokenizer: FAIL"; fi
exit $fail
