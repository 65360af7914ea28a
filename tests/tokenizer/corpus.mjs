// corpus.mjs — deterministic (seeded) multilingual test strings for the
// tokenizer cross-check: prose in many scripts, CJK and kana runs, code,
// emoji sequences, combining marks, non-ASCII digits and punctuation,
// Unicode and ASCII whitespace runs, control characters, special-token
// strings as plain text, random code points, and a few long strings.
//
//   node corpus.mjs --seed N --count N           JSON lines (one string each)
//   node corpus.mjs --seed N --count N --train   plain text for vocab training
//
// Every character used is assigned (or unassigned) identically in Unicode 14
// (what PCRE2 10.42 knows) and in the Unicode of current Node.js releases, so
// \p{..} classes agree between the C and the JavaScript side. U+0000 is
// never produced (JSON strings cannot carry it through cJSON; the C unit
// tests cover NUL bytes).

export function rng(seed) {
  let a = seed >>> 0;
  const next = () => { // mulberry32
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n) => Math.floor(next() * n);
  const pick = (arr) => arr[int(arr.length)];
  return { next, int, pick, range: (lo, hi) => lo + int(hi - lo + 1) };
}

const W = (s) => s.split(/\s+/).filter(Boolean);
const LANGS = {
  en: W(`the of and to in is was for that with as on by at from this be are have not it which but or an
    they you were his her their one all would there been has more when will who about if out so can
    said what up its into than them only other new some could time these two may then do first any my
    now such like our over man me even most made after also did many before must through back years
    where much your way well down should because each just those people how too little state good very
    make world still own see men work long get here between both life being under never day same another
    know while last might us great old year off come since against go came right used take three token
    model server request stream decode expert router layer cache prompt tensor weight kernel thread`),
  fr: W(`le la les des une été où déjà très être à ça garçon français élève hôtel forêt naïve cœur
    Noël fenêtre château théâtre crème brûlée voilà pièce reçu côté août Œuvre Ça DÉJÀ`),
  de: W(`der die das und über Straße Größe Mädchen Äpfel schön Übung Fuß weiß Öl grün müssen
    Bücher Zürich Gemütlichkeit Schloß Bären ÄÖÜ außerdem`),
  es: W(`el la niño año señor mañana corazón canción acción también Málaga jalapeño pingüino
    ¿Qué ¡Hola! está información pequeño`),
  pt: W(`não são ação coração informação você avô avó pão maçã João irmã português`),
  vi: W(`Tiếng Việt người được những không chúng tôi của một đường phố Hà Nội Sài Gòn nước`),
  pl: W(`źdźbło żółć gęślą jaźń Łódź Kraków zażółć chrząszcz brzmi w trzcinie`),
  tr: W(`İstanbul ığdır şeker çiçek göğüs Iİıi ağaç doğru`),
  ru: W(`привет мир как дела это очень хорошо Москва съешь же ещё этих мягких французских булок
    да выпей чаю Ёлка ЁЖ`),
  el: W(`Γειά σου κόσμε αλφάβητο ελληνικά Ἀθῆναι ψυχή ΣΊΣΥΦΟΣ ς λόγος`),
  ar: W(`مرحبا بالعالم اللغة العربية كتاب مدرسة السلام عليكم شكراً جزيلاً`),
  he: W(`שלום עולם עברית ספר בית שָׁלוֹם`),
  hi: W(`नमस्ते दुनिया हिन्दी भाषा किताब विद्यालय धन्यवाद क्षत्रिय`),
  th: W(`สวัสดีครับ ภาษาไทย ขอบคุณ กรุงเทพมหานคร น้ำ`),
  ko: W(`안녕하세요 세계 한국어 감사합니다 서울 대한민국 프로그램 토큰`),
  zh: W(`你好 世界 中文 分词器 测试 模型 服务器 专家 路由 缓存 我们 今天 天气 很好 人工智能
    深度求索 北京 上海 龘 齉 鬱 说话 這個 繁體字 㐀 𠀀 𪚥 丽 兀`),
  ja: W(`こんにちは 世界 日本語 テスト トークナイザー カタカナ ひらがな 東京 ありがとう
    ございます 〆切 々 ｶﾀｶﾅ ヴ ゔ ー ゝゞ ヽヾ 〜 ・`),
};
const NO_SPACE = new Set(['zh', 'ja', 'th']);

const PUNCT = W(`. , ; : ! ? ... — – - ( ) [ ] { } " ' “ ” ‘ ’ « » … 、 。 ， ！ ？ ： ； 「 」 『 』
  【 】 《 》 · • ¿ ¡ § ¶ † ‡ ‰ ′ ″ ※ ‼ ⁇ ' " \` ~ @ # $ % ^ & * _ + = | \\ / < > ״ ، ؟ । ๆ ฯ`);
const SYMBOLS = W(`€ £ ¥ ₹ ₩ ₽ $ © ® ™ ° ± × ÷ → ← ⇒ ⇔ ∀ ∃ ∑ ∏ √ ∞ ≈ ≠ ≤ ≥ ∈ ∉ ∪ ∩ ♠ ♥ ♦ ♣ ★ ☆
  ✓ ✗ ☃ ♪ ♫ ☺ ☹ ⌘ ⌥ ⏎ ␣ ¬ ¦ ¨ ¯ ´ ¸ ˆ ˜ ˚ ˘ ⁄ ℃ ℉ № ℡ ℓ Ω ℮ ⅓ ¼ ½ ¾`);
const EMOJI = [
  '😀', '😂', '🤣', '😍', '🥰', '😎', '🤔', '🙄', '😭', '😡', '👍', '👎', '👏', '🙏', '💪', '🔥', '✨', '🎉',
  '❤️', '💔', '💯', '✅', '❌', '⚠️', '🚀', '🌍', '🌸', '🍕', '☕', '🐍', '🦀', '🐧', '🤖', '👾', '🧠',
  '👍🏽', '👋🏿', '🧑‍💻', '👩‍👩‍👧‍👦', '👨‍❤️‍👨', '🏳️‍🌈', '🏴‍☠️', '🇫🇷', '🇯🇵', '🇺🇸', '🇨🇳', '1️⃣', '#️⃣', '*️⃣',
  '©️', '™️', '↩️', '⭐', '🌟', '💩', '🥲',
];
const DIGITS = [
  '0123456789', '٠١٢٣٤٥٦٧٨٩', '۰۱۲۳۴۵۶۷۸۹', '०१२३४५६७८९', '০১২৩৪৫৬৭৮৯', '๐๑๒๓๔๕๖๗๘๙',
  '０１２３４５６７８９', '𝟎𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖𝟗', '⁰¹²³⁴⁵⁶⁷⁸⁹', '₀₁₂₃₄₅₆₇₈₉', '①②③④⑤⑥⑦⑧⑨⑩', 'ⅠⅡⅢⅣⅤⅥⅦⅧⅨⅩⅪⅫ',
  '〇一二三四五六七八九十百千万', '½⅓⅔¼¾⅛',
];
const SPACES = [' ', ' ', ' ', '  ', '   ', '    ', '\t', '\t\t', '\n', '\n', '\n\n', '\r\n', '\r', ' \n',
  '\n ', '\u00a0', '\u3000', '\u2003', '\u2009', '\u202f', '\u2028', '\u2029', '\u0085', '\v', '\f',
  '\u1680', '\u205f', ' \t ', '\n\n\n', '  \n  ', '\t\n'];
const INVISIBLE = ['\u200b', '\u200c', '\u200d', '\u2060', '\ufeff', '\u00ad', '\u180e', '\u200e',
  '\u200f', '\u061c', '\u2066', '\u2069', '\ufe0f', '\ufe0e', '\u034f'];
const COMBINING = ['\u0301', '\u0300', '\u0308', '\u0327', '\u0303', '\u030a', '\u0323', '\u0336',
  '\u20dd', '\u20e3', '\u0489', '\u1ab0', '\u093f', '\u0e31', '\u05b7', '\u064e', '\u3099', '\u309a'];
const SPECIALS = ['<｜begin▁of▁sentence｜>', '<｜end▁of▁sentence｜>', '<｜User｜>', '<｜Assistant｜>',
  '<think>', '</think>', '｜DSML｜', '<｜▁pad▁｜>', '</｜DSML｜parameter>', '<｜DSML｜invoke name="x">'];
const CODE = [
  'int main(int argc, char **argv) {', '    return 0;', '}', '#include <stdio.h>',
  'for (size_t i = 0; i < n; i++) x[i] += y[i] * 2.5f;', '\tif (!p) { errno = ENOMEM; goto fail; }',
  'def tokenize(text: str) -> list[int]:', '    """Split text into ids."""', '    return [ord(c) for c in text]',
  'import numpy as np', 'x = np.zeros((3, 4), dtype=np.float32)  # comment', 'print(f"{x!r:>10}")',
  'const re = /\\p{L}+/gu;', 'export async function main() { await fetch(`/v1/chat?x=${id}`); }',
  'let v: Vec<u8> = s.bytes().collect::<Vec<_>>();', 'fn add(a: i32, b: i32) -> i32 { a + b }',
  '{"model": "deepseek-v4", "messages": [{"role": "user", "content": "hi"}], "stream": true}',
  'SELECT id, name FROM users WHERE age >= 18 ORDER BY name;', '<div class="a b">&nbsp;&lt;x&gt;</div>',
  'curl -sS -X POST http://127.0.0.1:8080/v1/chat/completions -H \'Content-Type: application/json\'',
  'a=$((b<<2)); echo "${a:-0}" | tr -d \'\\n\' >/dev/null 2>&1', '    // TODO(someone): fix O(n^2) loop!!!',
  'x->y->z = &arr[i][j];', 'if a != b and c <= d or not e: pass', 'std::vector<std::string> v{"a", "b"};',
  'mask = 0xFFFF_FFFF; y = 1e-9; z = .5; w = 1_000_000', '@decorator\nclass Foo(Bar):', '#!/usr/bin/env bash',
  '\'\'\'docstring\'\'\'', 'x := <-ch; go func() { defer wg.Done() }()', '=== RUN   TestFoo\n--- PASS: TestFoo (0.00s)',
];

// Code point ranges for random strings. All of these are stable between
// Unicode 14 and later (the unassigned ones stay unassigned).
const RANGES = [
  [0x01, 0x1f], [0x7f, 0x9f], [0xa0, 0xff], [0x100, 0x24f], [0x250, 0x2ff], [0x300, 0x36f],
  [0x370, 0x377], [0x378, 0x379], [0x37a, 0x37f], [0x384, 0x38a], [0x38e, 0x3a1], [0x3a3, 0x3ff],
  [0x400, 0x4ff], [0x591, 0x5c7], [0x5d0, 0x5ea], [0x600, 0x6ff], [0x900, 0x97f], [0xe01, 0xe3a],
  [0xe3f, 0xe5b], [0x1100, 0x11ff], [0x1680, 0x169c], [0x180e, 0x180e], [0x1ab0, 0x1abe],
  [0x1e00, 0x1eff], [0x2000, 0x2064], [0x2066, 0x206f], [0x2070, 0x2071], [0x2074, 0x208e],
  [0x20a0, 0x20c0], [0x20d0, 0x20f0], [0x2100, 0x218b], [0x2190, 0x23ff], [0x2460, 0x27bf],
  [0x2e80, 0x2e99], [0x3000, 0x303f], [0x3041, 0x3096], [0x3099, 0x30ff], [0x3105, 0x312f],
  [0x3131, 0x318e], [0x3400, 0x4dbf], [0x4e00, 0x9fff], [0x4e00, 0x9fa5], [0xac00, 0xd7a3],
  [0xe000, 0xe0ff], [0xf900, 0xfa6d], [0xfe00, 0xfe19], [0xfe30, 0xfe4f], [0xfeff, 0xfeff],
  [0xff01, 0xffbe], [0xfffc, 0xffff], [0x1d400, 0x1d7ff], [0x1f1e6, 0x1f1ff], [0x1f300, 0x1f64f],
  [0x1f680, 0x1f6c5], [0x1f910, 0x1f93e], [0x20000, 0x2a6df], [0xe0020, 0xe007f], [0xf0000, 0xf00ff],
];

function makeGen(seed) {
  const r = rng(seed);
  const cp = () => {
    const x = r.next();
    if (x < 0.45) return String.fromCodePoint(r.range(0x20, 0x7e));
    if (x < 0.55) return r.pick(SPACES);
    const [lo, hi] = r.pick(RANGES);
    return String.fromCodePoint(r.range(lo, hi));
  };
  const number = () => {
    const k = r.int(8);
    if (k === 0) { const d = r.pick(DIGITS); let s = ''; for (let i = r.range(1, 12); i > 0; i--) s += [...d][r.int([...d].length)]; return s; }
    if (k === 1) return String(r.int(1e9)).replace(/\B(?=(\d{3})+(?!\d))/g, ',') + '.' + r.int(100);
    if (k === 2) return `v${r.int(10)}.${r.int(30)}.${r.int(300)}`;
    if (k === 3) return `${2000 + r.int(30)}-${String(1 + r.int(12)).padStart(2, '0')}-${String(1 + r.int(28)).padStart(2, '0')}`;
    if (k === 4) return String(r.int(2 ** 31)) + String(r.int(2 ** 31));
    if (k === 5) return `${r.int(100)}%`;
    if (k === 6) return `0x${r.int(2 ** 30).toString(16)}`;
    return String(r.int(1000));
  };
  const word = (lang) => {
    let w = r.pick(LANGS[lang]);
    const x = r.next();
    if (x < 0.1) w = w[0].toUpperCase() + w.slice(1);
    else if (x < 0.13) w = w.toUpperCase();
    else if (x < 0.16) w += r.pick(COMBINING);
    else if (x < 0.18) w = r.pick(COMBINING) + w;
    return w;
  };
  const sentence = (lang) => {
    const n = r.range(3, 25);
    let s = '';
    for (let i = 0; i < n; i++) {
      if (i && !NO_SPACE.has(lang)) s += r.next() < 0.93 ? ' ' : r.pick(SPACES);
      const x = r.next();
      if (x < 0.06) s += number();
      else if (x < 0.1) s += r.pick(PUNCT);
      else if (x < 0.12) s += r.pick(SYMBOLS);
      else if (x < 0.14) s += r.pick(EMOJI);
      else s += word(lang);
      if (r.next() < 0.12) s += r.pick(PUNCT);
    }
    return s + r.pick(['.', '.', '!', '?', '。', '…', '', '.\n', '\n\n', ':\n', '."\n', '!!', '?!']);
  };
  const code = () => {
    let s = '';
    const nl = r.next() < 0.1 ? '\r\n' : '\n';
    for (let i = r.range(1, 8); i > 0; i--) {
      s += ' '.repeat(r.pick([0, 0, 2, 4, 8])) + (r.next() < 0.1 ? '\t' : '') + r.pick(CODE);
      s += r.next() < 0.15 ? nl + nl : nl;
    }
    return s;
  };
  const emoji = () => {
    let s = '';
    for (let i = r.range(1, 10); i > 0; i--) {
      s += r.pick(EMOJI);
      if (r.next() < 0.3) s += r.pick([' ', '', '\n', '!', 'ok', ' 好', '...']);
    }
    return s;
  };
  const whitespace = () => {
    let s = '';
    for (let i = r.range(1, 10); i > 0; i--) {
      const x = r.next();
      if (x < 0.2) s += ' '.repeat(r.range(1, 300));
      else if (x < 0.5) s += r.pick(SPACES);
      else if (x < 0.65) s += r.pick(PUNCT);
      else if (x < 0.7) s += r.pick(INVISIBLE);
      else s += word(r.pick(Object.keys(LANGS)));
    }
    return s;
  };
  const fuzz = () => { let s = ''; for (let i = r.range(1, 60); i > 0; i--) s += cp(); return s; };
  const mixed = () => {
    let s = '';
    for (let i = r.range(1, 12); i > 0; i--) {
      const x = r.next();
      if (x < 0.35) s += sentence(r.pick(Object.keys(LANGS)));
      else if (x < 0.45) s += r.pick(SPECIALS);
      else if (x < 0.55) s += number();
      else if (x < 0.65) s += r.pick(SPACES);
      else if (x < 0.75) s += emoji();
      else if (x < 0.85) s += fuzz();
      else s += r.pick(CODE);
    }
    return s;
  };
  const long = () => { let s = ''; while (s.length < 20000) s += r.next() < 0.7 ? mixed() : code(); return s; };
  const kinds = [
    [14, () => sentence(r.pick(Object.keys(LANGS)))],
    [6, () => { let s = ''; for (let i = r.range(2, 6); i > 0; i--) s += sentence(r.pick(Object.keys(LANGS))) + ' '; return s; }],
    [10, code], [8, emoji], [8, whitespace], [14, fuzz], [16, mixed],
    [6, () => { let s = ''; for (let i = r.range(1, 8); i > 0; i--) s += number() + r.pick(['', ' ', ',', '.', 'x', '年', '\n']); return s; }],
    [6, () => r.pick(SPECIALS) + sentence('en') + r.pick(SPECIALS) + r.pick(SPECIALS) + sentence('zh')],
  ];
  const total = kinds.reduce((a, k) => a + k[0], 0);
  return {
    one() {
      let x = r.int(total);
      for (const [w, f] of kinds) { if (x < w) return f(); x -= w; }
      throw new Error('unreachable');
    },
    long,
  };
}

// Short hand-picked strings that pin the interesting regex boundaries.
export const EDGE_CASES = [
  '', ' ', '  ', '\n', '\r\n', '\t', 'a', '1', '12', '123', '1234', '1234567', '１２３４', '٣٤٥٦',
  ' 123', 'a1b22c333d4444', 'Hello world', ' Hello', 'Hello  world', 'Hello   world', 'x\n\ny',
  'end.\n\n', 'end.\r\n', 'a.b', '.hidden', '...abc', '"quoted"', "it's", 'don\'t', '(x)', '[y]',
  '中文English混合', 'ひらがなカタカナ漢字', '一龥', '龦', '゠ヿ', 'ー', 'ｶﾀｶﾅ', '㐀', '𠀀',
  'é', 'e\u0301', '\u0301', ' \u0301', '.\u0301', '1\u0301', '中\u0301', 'a\u0301\u0302\u0303',
  'naïve café', 'Ελληνικά', 'Привет, мир!', 'مرحبا', 'नमस्ते', 'สวัสดี', '안녕', '👍🏽', '👩‍👩‍👧‍👦', '🇫🇷🇯🇵',
  ' 🚀', '🚀 ', '\u00a0x', 'x\u00a0', '\u3000中', 'a\u2028b', 'a\u0085b', 'a\ufeffb', 'a\u180eb',
  '    int x;', '\tx', '  \n  x', 'x  ', 'x \n', ' \n\n ', '\n\n\n', ' ' + ' '.repeat(200) + 'x',
  '<think>', '</think>', '<｜User｜>hi<｜Assistant｜>', '｜DSML｜', '$$', '$x', '#include', '@user',
  '→x', '—x', ' —', '“x”', '…', '¿Qué?', '¡Hola!', '\u0001\u0002\u001f', '\u007f\u0080\u009f',
  '\ue000', '\uffff', '\u0378', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢', '𝟘𝟙𝟚', 'Ⅻ', '①②', '²³', 'x²', '½', 'A-Z', 'a_b', 'a__b__',
];

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  const opt = (k, d) => { const i = args.indexOf(k); return i >= 0 ? args[i + 1] : d; };
  const seed = Number(opt('--seed', '1')), count = Number(opt('--count', '2000'));
  const train = args.includes('--train');
  const g = makeGen(seed);
  const out = [];
  if (train) {
    for (let i = 0; i < count; i++) out.push(g.one());
    process.stdout.write(out.join('\n'));
  } else {
    for (const s of EDGE_CASES) out.push(JSON.stringify(s));
    for (let i = 0; i < count; i++) out.push(JSON.stringify(g.one()));
    for (let i = 0; i < 3; i++) out.push(JSON.stringify(g.long()));
    process.stdout.write(out.join('\n') + '\n');
  }
}
