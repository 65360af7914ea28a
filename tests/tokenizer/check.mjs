// check.mjs — cross-checks flashpool-tokenize (C) against Hugging Face
// tokenizers.js (@huggingface/transformers, PreTrainedTokenizer) on one GGUF.
//
//   node check.mjs --tool build/flashpool-tokenize --gguf FILE.gguf --corpus FILE.jsonl
//
// The tokenizers.js side gets a tokenizer.json built here from the GGUF's
// tokenizer.ggml.tokens / merges / token_type (read by gguf.mjs, not by the C
// code under test) with DeepSeek V3's official pre-tokenizer and decoder
// config. Checks, each over the whole corpus:
//   1. pre-tokenizer pieces: C `pieces` == tokenizers.js pre_tokenizer();
//   2. token ids: C `encode` == tokenizers.js encode(add_special_tokens=false);
//   3. round trip: C `decode`(C ids) == the input string;
//   4. streaming decode of random id sequences (partial UTF-8 and control
//      tokens included) == WHATWG TextDecoder over the same token bytes.
// Exits 1 on any difference, printing the first few.
import { PreTrainedTokenizer } from '@huggingface/transformers';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readGgufMetadata } from './gguf.mjs';
import { rng } from './corpus.mjs';

// The "pre_tokenizer" and "decoder" of deepseek-ai/DeepSeek-V3's official
// tokenizer.json (commit e815299; DeepSeek V4 keeps them), transcribed from
// the excerpt cited in docs/serving-spec.md section 1.3 / Appendix A. The
// C side (coordinator/pretokenizer.c) carries its own copy of the regexes.
const DEEPSEEK_PRE_TOKENIZER = {
  type: 'Sequence',
  pretokenizers: [
    { type: 'Split', pattern: { Regex: '\\p{N}{1,3}' }, behavior: 'Isolated', invert: false },
    { type: 'Split', pattern: { Regex: '[一-龥぀-ゟ゠-ヿ]+' }, behavior: 'Isolated', invert: false },
    {
      type: 'Split',
      pattern: {
        Regex: "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
      },
      behavior: 'Isolated',
      invert: false,
    },
    { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
  ],
};

// GGUF token types that are not byte-level BPE entries (control,
// user-defined, unused); like DeepSeek's added tokens they stay out of
// model.vocab, and since this check is about PLAIN-TEXT encoding they are
// not registered as added tokens either (tokenizers.js would otherwise cut
// them out of the text, which is the rendered-chat path, not encode()).
const SPECIAL_TYPES = new Set([3, 4, 5]);

function buildTokenizerJson(kv) {
  const tokens = kv.get('tokenizer.ggml.tokens');
  const merges = kv.get('tokenizer.ggml.merges') ?? [];
  const types = kv.get('tokenizer.ggml.token_type');
  if (!Array.isArray(tokens)) throw new Error('GGUF has no tokenizer.ggml.tokens');
  const vocab = Object.create(null);
  tokens.forEach((t, i) => { if (!types || !SPECIAL_TYPES.has(types[i])) vocab[t] = i; });
  return {
    tokenizerJson: {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: [],
      normalizer: { type: 'Sequence', normalizers: [] },
      pre_tokenizer: DEEPSEEK_PRE_TOKENIZER,
      post_processor: null,
      decoder: { type: 'ByteLevel' },
      model: {
        type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null,
        end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false,
        vocab, merges,
      },
    },
    tokens, types,
  };
}

// GPT-2 bytes_to_unicode, written out here so the check does not borrow the
// mapping from either implementation under comparison.
const BYTE_TO_CHAR = (() => {
  const keep = (b) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const m = new Array(256);
  let n = 0;
  for (let b = 0; b < 256; b++) m[b] = String.fromCodePoint(keep(b) ? b : 256 + n++);
  return m;
})();
const CHAR_TO_BYTE = new Map(BYTE_TO_CHAR.map((c, b) => [c, b]));
const byteLevel = (s) => Array.from(Buffer.from(s, 'utf8'), (b) => BYTE_TO_CHAR[b]).join('');

function runTool(tool, args, input) {
  const r = spawnSync(tool, args, { input, maxBuffer: 1 << 30, encoding: 'utf8' });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${tool} ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  const lines = r.stdout.split('\n');
  if (lines.pop() !== '') throw new Error(`${tool} ${args.join(' ')}: output does not end in a newline`);
  return lines.map((l) => JSON.parse(l));
}

const show = (s) => JSON.stringify(s.length > 160 ? s.slice(0, 160) + '…' : s);

function main() {
  const args = process.argv.slice(2);
  const opt = (k) => { const i = args.indexOf(k); if (i < 0 || i + 1 >= args.length) throw new Error(`missing ${k}`); return args[i + 1]; };
  const tool = opt('--tool'), gguf = opt('--gguf'), corpusPath = opt('--corpus');
  const label = gguf.split('/').pop();
  const corpus = readFileSync(corpusPath, 'utf8').split('\n').filter((l) => l.length).map((l) => JSON.parse(l));

  const t0 = Date.now();
  const kv = readGgufMetadata(gguf);
  const { tokenizerJson, tokens, types } = buildTokenizerJson(kv);
  const tok = new PreTrainedTokenizer(tokenizerJson, { clean_up_tokenization_spaces: false });
  const t1 = Date.now();
  const jsIds = corpus.map((s) => tok.encode(s, { add_special_tokens: false }));
  const jsPieces = corpus.map((s) => tok._tokenizer.pre_tokenizer(s));
  const t2 = Date.now();
  const input = corpus.map((s) => JSON.stringify(s)).join('\n') + '\n';
  const cPieces = runTool(tool, ['pieces'], input);
  const cIds = runTool(tool, ['encode', '-m', gguf], input);
  const cBack = runTool(tool, ['decode', '-m', gguf], cIds.map((a) => JSON.stringify(a)).join('\n') + '\n');
  const t3 = Date.now();

  let failures = 0, nTokens = 0, pieceFail = 0, idFail = 0, rtFail = 0;
  const report = (what, i, detail) => {
    failures++;
    if (failures <= 8) console.log(`  MISMATCH ${what} #${i} ${show(corpus[i])}\n    ${detail}`);
  };
  for (let i = 0; i < corpus.length; i++) {
    const cp = cPieces[i].map(byteLevel);
    if (JSON.stringify(cp) !== JSON.stringify(jsPieces[i])) {
      pieceFail++;
      let k = 0;
      while (k < cp.length && cp[k] === jsPieces[i][k]) k++;
      report('pieces', i, `first difference at piece ${k}: C ${show(String(cp[k]))} vs tokenizers.js ${show(String(jsPieces[i][k]))}`);
    }
    nTokens += cIds[i].length;
    if (JSON.stringify(cIds[i]) !== JSON.stringify(jsIds[i])) {
      idFail++;
      let k = 0;
      while (k < cIds[i].length && cIds[i][k] === jsIds[i][k]) k++;
      report('ids', i, `first difference at token ${k}: C ${JSON.stringify(cIds[i].slice(k, k + 6))} vs tokenizers.js ${JSON.stringify(jsIds[i].slice(k, k + 6))}`);
    }
    if (cBack[i] !== corpus[i]) { rtFail++; report('round trip', i, `decode(encode(s)) = ${show(cBack[i])}`); }
  }

  // Streaming decode: random sequences, weighted towards tokens that hold
  // partial UTF-8 (lead bytes, continuation bytes) and towards specials.
  const r = rng(12345);
  const isSpecial = (i) => types && SPECIAL_TYPES.has(types[i]);
  const tokenBytes = (i) => {
    if (isSpecial(i)) return Buffer.from(tokens[i], 'utf8');
    const chars = Array.from(tokens[i]);
    if (!chars.every((c) => CHAR_TO_BYTE.has(c))) return Buffer.from(tokens[i], 'utf8');
    return Buffer.from(chars.map((c) => CHAR_TO_BYTE.get(c)));
  };
  const partial = [], specials = [];
  tokens.forEach((t, i) => {
    if (isSpecial(i)) specials.push(i);
    else if (tokenBytes(i).some((b) => b >= 0x80)) partial.push(i);
  });
  const seqs = [];
  for (let n = 0; n < 600; n++) {
    const ids = [];
    for (let k = r.range(1, 40); k > 0; k--) {
      const x = r.next();
      ids.push(x < 0.5 && partial.length ? r.pick(partial) : x < 0.55 && specials.length ? r.pick(specials) : r.int(tokens.length));
    }
    seqs.push(ids);
  }
  const streamOut = runTool(tool, ['decode', '-m', gguf], seqs.map((a) => JSON.stringify(a)).join('\n') + '\n');
  const dec = new TextDecoder('utf-8');
  let streamFail = 0;
  seqs.forEach((ids, i) => {
    const want = dec.decode(Buffer.concat(ids.map(tokenBytes)));
    if (streamOut[i] !== want) {
      streamFail++;
      failures++;
      if (failures <= 8) console.log(`  MISMATCH stream decode of ${JSON.stringify(ids)}\n    C ${show(streamOut[i])} vs TextDecoder ${show(want)}`);
    }
  });

  const nm = (kv.get('tokenizer.ggml.merges') ?? []).length;
  console.log(`${label}: vocab ${tokens.length}, ${nm} merges; ${corpus.length} strings, ${nTokens} tokens;` +
    ` pieces ${corpus.length - pieceFail}/${corpus.length}, ids ${corpus.length - idFail}/${corpus.length},` +
    ` round trip ${corpus.length - rtFail}/${corpus.length}, stream decode ${seqs.length - streamFail}/${seqs.length}` +
    ` (tokenizers.js ${t2 - t1} ms, C tool ${t3 - t2} ms, setup ${t1 - t0} ms)`);
  if (failures) {
    console.log(`${label}: FAIL (${failures} mismatches)`);
    process.exit(1);
  }
}

main();
