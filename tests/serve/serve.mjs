// serve.mjs — end-to-end checks of `flashpool serve` on the real engine
// (through two expert nodes) with the official openai and @anthropic-ai/sdk
// clients. Started by tests/serve/run.sh, one phase per invocation:
//
//   node serve.mjs main    server with --test-script (two scripted replies),
//                          --think none, --log-tokens: checks (e) tool round
//                          trip, (c) prefix reuse, (a) greedy == CLI, (b)
//                          Anthropic / Responses streaming, (f) bad JSON, (g) /metrics
//   node serve.mjs disk1   (d) first run of a long prompt; writes FP_DISK_STATE
//   node serve.mjs disk2   (d) after a restart: served from disk, same output
//
// Environment: FP_BASE, FP_KEY, FP_TOKLOG (the server's --log-tokens file),
// FP_CLI (build/flashpool), FP_MODEL, FP_CTX, FP_DISK_STATE.
// Every check prints "ok"/"FAIL"; the exit code is the number of failures.
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { execFileSync } from 'node:child_process';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';

const BASE = process.env.FP_BASE;
const KEY = process.env.FP_KEY || 'serve-key';
const MODEL = 'deepseek-v4-flash';
const openai = new OpenAI({ baseURL: `${BASE}/v1`, apiKey: KEY, maxRetries: 0, timeout: 120000 });
const anthropic = new Anthropic({ baseURL: BASE, apiKey: KEY, maxRetries: 0, timeout: 120000 });

let failures = 0;
function check(name, cond, detail = '') {
  if (cond) console.log(`  ok   ${name}`);
  else { failures++; console.log(`  FAIL ${name}${detail ? `: ${detail}` : ''}`); }
}
async function step(name, fn) {
  try { await fn(); } catch (e) { failures++; console.log(`  FAIL ${name}: ${e?.stack || e}`); }
}

// The server's token log: one line per generation, appended after it ends.
function tokenLines() {
  if (!fs.existsSync(process.env.FP_TOKLOG)) return [];
  return fs.readFileSync(process.env.FP_TOKLOG, 'utf8').split('\n').filter(Boolean).map((l) => {
    const m = /^tokens cached=(\d+)( scripted=1)? prompt=\[([\d,]*)\] output=\[([\d,]*)\]$/.exec(l);
    if (!m) throw new Error(`bad token log line: ${l.slice(0, 120)}`);
    const ids = (s) => (s ? s.split(',').map(Number) : []);
    return { cached: +m[1], scripted: !!m[2], prompt: ids(m[3]), output: ids(m[4]) };
  });
}
const lastGen = () => tokenLines().at(-1);

// Greedy single-process reference: build/flashpool --tokens (no pool).
function cliGreedy(promptIds, n) {
  const f = path.join(os.tmpdir(), `fp-serve-prompt-${process.pid}.txt`);
  fs.writeFileSync(f, promptIds.join('\n') + '\n');
  const out = execFileSync(process.env.FP_CLI, ['-q', '-m', process.env.FP_MODEL, '--tokens', f, '-n', String(n),
    '--greedy', '--threads', '1', '--ctx', process.env.FP_CTX || '4096'], { encoding: 'utf8' });
  fs.unlinkSync(f);
  return out.split('\n').filter(Boolean).map(Number);
}

// Deterministic filler text of about `words` words.
function filler(words, seed) {
  const w = ['alpha', 'beta', 'gamma', 'delta', 'kernel', 'matrix', 'token', 'cache', 'pool', 'node', 'expert', 'layer'];
  let x = seed >>> 0;
  const out = [];
  for (let i = 0; i < words; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out.push(w[(x >>> 8) % w.length] + ((x >>> 16) % 100));
  }
  return out.join(' ');
}

const weather = {
  type: 'function',
  function: {
    name: 'get_weather', description: 'Get the weather for a city',
    parameters: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } }, required: ['city'] },
  },
};

async function phaseMain() {
  // ---- (e) scripted DSML tool call -> SDK tool call -> tool result -> answer
  const conv = [{ role: 'user', content: 'What is the weather in Paris for the next 2 days?' }];
  let r1, r2;
  await step('tool round trip', async () => {
    r1 = await openai.chat.completions.create({ model: MODEL, messages: conv, tools: [weather], temperature: 0, max_tokens: 200 });
    const g1 = lastGen();
    check('(e) request 1 came from the test script', g1 && g1.scripted);
    const tc = r1.choices[0].message.tool_calls || [];
    check('(e) the SDK sees one tool call', tc.length === 1 && r1.choices[0].finish_reason === 'tool_calls',
      JSON.stringify(r1.choices[0]));
    const args = JSON.parse(tc[0].function.arguments);
    check('(e) tool name and arguments parsed', tc[0].function.name === 'get_weather' && args.city === 'Paris' && args.days === 2,
      tc[0].function.arguments);
    conv.push(r1.choices[0].message);
    conv.push({ role: 'tool', tool_call_id: tc[0].id, content: '{"sky":"sunny","celsius":21}' });
    r2 = await openai.chat.completions.create({ model: MODEL, messages: conv, tools: [weather], temperature: 0, max_tokens: 200 });
    check('(e) the answer after the tool result', r2.choices[0].message.content === 'It is sunny in Paris, 21 degrees.'
      && r2.choices[0].finish_reason === 'stop', JSON.stringify(r2.choices[0].message));
    // (c) the second request extends the first: its prompt starts with
    // request 1's prompt + output (exact DSML replay), so all of that is cached.
    const c2 = r2.usage.prompt_tokens_details?.cached_tokens ?? 0;
    const want = r1.usage.prompt_tokens + r1.usage.completion_tokens - 1;
    check('(c) tool-result turn reuses the previous prompt + tool call', c2 >= want,
      `cached ${c2}, previous prompt ${r1.usage.prompt_tokens} + output ${r1.usage.completion_tokens}`);
  });

  // ---- (c) continue the conversation: only the new suffix is evaluated
  await step('conversation continues from cache', async () => {
    conv.push(r2.choices[0].message);
    conv.push({ role: 'user', content: 'Thanks. And tomorrow?' });
    const before = tokenLines().length;
    const r3 = await openai.chat.completions.create({ model: MODEL, messages: conv, tools: [weather], temperature: 0, max_tokens: 4 });
    const c3 = r3.usage.prompt_tokens_details?.cached_tokens ?? 0;
    const want = r2.usage.prompt_tokens + r2.usage.completion_tokens - 1;
    check('(c) third turn: cached_tokens covers turn 2 prompt + answer', c3 >= want,
      `cached ${c3}, want >= ${want} (prompt ${r3.usage.prompt_tokens})`);
    const g = tokenLines();
    check('(c) the engine evaluated only the suffix', g.length === before + 1 && g.at(-1).cached === c3
      && r3.usage.prompt_tokens - c3 <= 20 && r3.usage.prompt_tokens - c3 > 0,
      `prompt ${r3.usage.prompt_tokens}, cached ${c3}`);
    check('(c) third turn is sampled by the model (script used up)', !g.at(-1).scripted);
  });

  // ---- (a) greedy through the pool == single-process CLI, non-streaming and streaming
  await step('greedy matches the CLI', async () => {
    const msgs = [{ role: 'user', content: `Summarise: ${filler(40, 7)}` }];
    const n = 12;
    const a = await openai.chat.completions.create({ model: MODEL, messages: msgs, temperature: 0, max_tokens: n });
    const ga = lastGen();
    const ref = cliGreedy(ga.prompt, n);
    check('(a) non-streaming output ids == flashpool --greedy (single process)',
      ga.output.length > 0 && ga.output.length === a.usage.completion_tokens
      && JSON.stringify(ga.output) === JSON.stringify(ref.slice(0, ga.output.length))
      && (a.choices[0].finish_reason !== 'length' || ga.output.length === ref.length),
      `server ${ga.output} vs cli ${ref}`);
    const stream = await openai.chat.completions.create({ model: MODEL, messages: msgs, temperature: 0, max_tokens: n,
      stream: true, stream_options: { include_usage: true } });
    let text = '', usage = null, finish = null;
    for await (const ch of stream) {
      if (ch.choices?.[0]?.delta?.content) text += ch.choices[0].delta.content;
      if (ch.choices?.[0]?.finish_reason) finish = ch.choices[0].finish_reason;
      if (ch.usage) usage = ch.usage;
    }
    const gs = lastGen();
    check('(a) streaming output ids == non-streaming == CLI', JSON.stringify(gs.output) === JSON.stringify(ga.output)
      && JSON.stringify(gs.prompt) === JSON.stringify(ga.prompt), `${gs.output} vs ${ga.output}`);
    check('(a) streamed text == non-streamed text', text === (a.choices[0].message.content ?? '')
      && finish === a.choices[0].finish_reason, `${JSON.stringify(text)} vs ${JSON.stringify(a.choices[0].message.content)}`);
    check('(a) streaming usage reported', usage && usage.completion_tokens === a.usage.completion_tokens);
    // A different prompt must give a different continuation (the comparison above can fail).
    const b = await openai.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'Something else entirely.' }],
      temperature: 0, max_tokens: n });
    const gb = lastGen();
    const refb = cliGreedy(gb.prompt, n);
    check('(a) second prompt also matches the CLI', gb.output.length === b.usage.completion_tokens
      && JSON.stringify(gb.output) === JSON.stringify(refb.slice(0, gb.output.length)), `${gb.output} vs ${refb}`);
  });

  // ---- (b) Anthropic Messages streaming (+ cache_read_input_tokens) and Responses streaming
  await step('anthropic streaming', async () => {
    const user = `Please read this: ${filler(60, 11)}`;
    const m1 = await anthropic.messages.create({ model: MODEL, max_tokens: 6, temperature: 0, messages: [{ role: 'user', content: user }] });
    check('(b) anthropic non-streaming message', m1.type === 'message' && m1.usage.output_tokens > 0);
    const p1 = m1.usage.input_tokens + (m1.usage.cache_read_input_tokens ?? 0);
    const reply = m1.content.filter((c) => c.type === 'text').map((c) => c.text).join('') || 'ok';
    const s = anthropic.messages.stream({ model: MODEL, max_tokens: 6, temperature: 0, messages: [
      { role: 'user', content: user }, { role: 'assistant', content: reply }, { role: 'user', content: 'Go on.' }] });
    const events = [];
    s.on('streamEvent', (e) => events.push(e.type));
    const fin = await s.finalMessage();
    check('(b) anthropic stream parsed', events[0] === 'message_start' && events.at(-1) === 'message_stop'
      && fin.usage.output_tokens > 0, events.join(','));
    check('(c) anthropic cache_read_input_tokens covers the previous prompt', (fin.usage.cache_read_input_tokens ?? 0) >= p1,
      `cache_read ${fin.usage.cache_read_input_tokens}, previous prompt ${p1}`);
  });
  await step('responses streaming', async () => {
    const stream = await openai.responses.create({ model: MODEL, input: 'Say something.', max_output_tokens: 6, temperature: 0, stream: true });
    const types = [];
    let done = null;
    for await (const ev of stream) {
      types.push(ev.type);
      if (ev.type === 'response.completed' || ev.type === 'response.incomplete') done = ev.response;
    }
    // 6 tokens of a random model: usually cut by max_output_tokens (incomplete).
    check('(b) responses stream parsed', types[0] === 'response.created' && done && done.status !== 'failed'
      && (done.status === 'completed' || done.incomplete_details?.reason === 'max_output_tokens')
      && done.usage && done.usage.output_tokens > 0, types.join(','));
  });

  // ---- (c) two conversations alternating: both stay cached (live sessions)
  await step('alternating conversations', async () => {
    const convs = [[{ role: 'user', content: `Conversation one. ${filler(50, 21)}` }],
                   [{ role: 'user', content: `Conversation two. ${filler(50, 22)}` }]];
    const first = [];
    for (const c of convs) {
      const r = await openai.chat.completions.create({ model: MODEL, messages: c, temperature: 0, max_tokens: 4 });
      first.push(r.usage.prompt_tokens);
      c.push({ role: 'assistant', content: r.choices[0].message.content || 'ok' }, { role: 'user', content: 'Continue.' });
    }
    for (let i = 0; i < 2; i++) {
      const r = await openai.chat.completions.create({ model: MODEL, messages: convs[i], temperature: 0, max_tokens: 4 });
      const cached = r.usage.prompt_tokens_details?.cached_tokens ?? 0;
      check(`(c) alternating conversation ${i + 1}: second turn reuses its first prompt`, cached >= first[i],
        `cached ${cached}, first prompt ${first[i]}`);
    }
  });

  // ---- (f) malformed JSON -> 400, the server keeps serving
  await step('malformed json', async () => {
    const bad = await fetch(`${BASE}/v1/chat/completions`, { method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` }, body: '{"model": "x", "messages": [' });
    const body = await bad.json();
    check('(f) malformed JSON gets 400 with an error body', bad.status === 400 && body.error?.type === 'invalid_request_error',
      `${bad.status} ${JSON.stringify(body)}`);
    const r = await openai.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'Still there?' }],
      temperature: 0, max_tokens: 3 });
    check('(f) the server still serves after it', r.usage.completion_tokens > 0);
  });

  // ---- (g) /metrics
  await step('metrics', async () => {
    const noauth = await fetch(`${BASE}/metrics`);
    check('(g) /metrics requires the API key', noauth.status === 401);
    const m = await fetch(`${BASE}/metrics`, { headers: { authorization: `Bearer ${KEY}` } });
    const text = await m.text();
    check('(g) /metrics 200 text/plain', m.status === 200 && (m.headers.get('content-type') || '').startsWith('text/plain'));
    const num = (re) => { const x = re.exec(text); return x ? Number(x[1]) : NaN; };
    const chat200 = num(/^flashpool_http_requests_total\{endpoint="\/v1\/chat\/completions",code="200"\} (\d+)/m);
    const chat400 = num(/^flashpool_http_requests_total\{endpoint="\/v1\/chat\/completions",code="400"\} (\d+)/m);
    check('(g) request counters by endpoint and status', chat200 >= 7 && chat400 >= 1, `200: ${chat200}, 400: ${chat400}`);
    const cached = num(/^flashpool_prompt_tokens_cached_total (\d+)/m);
    check('(g) cached prompt token counter', cached > 0, `${cached}`);
    const sess = num(/^flashpool_session_tokens_cached_total (\d+)/m);
    check('(g) session cache families', sess > 0, `${sess}`);
    // Every family is declared once (a valid exposition).
    const types = [...text.matchAll(/^# TYPE (\S+) /gm)].map((x) => x[1]);
    check('(g) no duplicate metric families', types.length > 20 && new Set(types).size === types.length,
      `${types.length} families`);
    // The experts ran on the two nodes (a pool, not the local executor).
    const disp = [...text.matchAll(/^flashpool_node_dispatches_total\{node="[^"]*"\} (\d+)/gm)].map((x) => Number(x[1]));
    check('(g) both expert nodes served dispatches', disp.length === 2 && disp.every((d) => d > 0), `${disp}`);
  });
}

async function longRequest() {
  const msgs = [{ role: 'user', content: `Here is a long document. ${filler(380, 5)} What is it about?` }];
  const t0 = Date.now();
  const r = await openai.chat.completions.create({ model: MODEL, messages: msgs, temperature: 0, max_tokens: 8 });
  const ms = Date.now() - t0;
  const g = lastGen();
  // This server's only generation so far: its prefill time from /metrics.
  const mt = await (await fetch(`${BASE}/metrics`, { headers: { authorization: `Bearer ${KEY}` } })).text();
  const pm = /^flashpool_prefill_seconds_total ([\d.]+)/m.exec(mt);
  return { prefill_s: pm ? Number(pm[1]) : NaN, prompt: r.usage.prompt_tokens, cached: r.usage.prompt_tokens_details?.cached_tokens ?? 0,
    text: r.choices[0].message.content, output: g.output, ms };
}

async function phaseDisk1() {
  await step('disk run 1', async () => {
    const r = await longRequest();
    check('(d) run 1: long prompt (>= 2000 tokens), cold', r.prompt >= 2000 && r.cached < 100 && r.output.length > 0,
      JSON.stringify({ prompt: r.prompt, cached: r.cached }));
    fs.writeFileSync(process.env.FP_DISK_STATE, JSON.stringify(r));
    console.log(`       run 1: ${r.prompt} prompt tokens, ${r.cached} cached, request ${r.ms} ms, prefill ${(r.prefill_s * 1000).toFixed(0)} ms`);
  });
}

async function phaseDisk2() {
  await step('disk run 2', async () => {
    const first = JSON.parse(fs.readFileSync(process.env.FP_DISK_STATE, 'utf8'));
    const r = await longRequest();
    console.log(`       run 2: ${r.prompt} prompt tokens, ${r.cached} cached, request ${r.ms} ms, prefill ${(r.prefill_s * 1000).toFixed(0)} ms`
      + ` (${(100 * r.prefill_s / first.prefill_s).toFixed(1)}% of run 1's prefill)`);
    check('(d) after restart the prompt is served from disk', r.prompt === first.prompt && r.cached >= 0.9 * r.prompt,
      `cached ${r.cached} of ${r.prompt}`);
    check('(d) output tokens identical to the first run', r.output.length > 0
      && JSON.stringify(r.output) === JSON.stringify(first.output) && r.text === first.text,
      `${r.output} vs ${first.output}`);
  });
}

const phase = process.argv[2];
if (phase === 'main') await phaseMain();
else if (phase === 'disk1') await phaseDisk1();
else if (phase === 'disk2') await phaseDisk2();
else { console.log(`usage: node serve.mjs main|disk1|disk2`); process.exit(2); }
process.exit(failures);
