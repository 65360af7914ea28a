// HTTP-level behaviour: malformed input in each API's own error shape, limits,
// auth, CORS, routing, queue back-pressure, cancellation on disconnect,
// keep-alive — and the server keeps serving throughout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, KEY, raw, parseSSE } from './helpers.mjs';

const user = (content) => [{ role: 'user', content }];
const openaiShape = (j) => j && typeof j.error?.message === 'string' && typeof j.error?.type === 'string' && 'param' in j.error && 'code' in j.error;
const anthShape = (j) => j && j.type === 'error' && typeof j.error?.type === 'string' && typeof j.error?.message === 'string';

test('malformed JSON -> 400 in each API shape', async () => {
  for (const [path, shape] of [['/v1/chat/completions', openaiShape], ['/v1/completions', openaiShape],
    ['/v1/responses', openaiShape], ['/v1/messages', anthShape], ['/v1/messages/count_tokens', anthShape]]) {
    for (const body of ['{"messages": [', 'not json', '', '[1,2]', '{"a":1} trailing', '"str"']) {
      const r = await raw('POST', path, { body });
      assert.equal(r.status, 400, `${path} ${JSON.stringify(body)}`);
      assert.ok(shape(r.json), `${path} shape: ${r.text}`);
      if (shape === anthShape) assert.equal(r.json.error.type, 'invalid_request_error');
      else assert.equal(r.json.error.type, 'invalid_request_error');
    }
  }
});

test('wrong field types -> 400 naming the field', async () => {
  const cases = [
    ['/v1/chat/completions', { messages: 'hi' }, 'messages'],
    ['/v1/chat/completions', { messages: [] }, 'messages'],
    ['/v1/chat/completions', {}, 'messages'],
    ['/v1/chat/completions', { messages: [5] }, 'messages[0]'],
    ['/v1/chat/completions', { messages: [{ role: 7, content: 'x' }] }, 'messages[0].role'],
    ['/v1/chat/completions', { messages: [{ role: 'wizard', content: 'x' }] }, 'messages[0]'],
    ['/v1/chat/completions', { messages: [{ role: 'user', content: 42 }] }, 'messages[0].content'],
    ['/v1/chat/completions', { messages: user('x'), temperature: 'hot' }, 'temperature'],
    ['/v1/chat/completions', { messages: user('x'), temperature: 9 }, 'temperature'],
    ['/v1/chat/completions', { messages: user('x'), max_tokens: -1 }, 'max_tokens'],
    ['/v1/chat/completions', { messages: user('x'), max_tokens: 1.5 }, 'max_tokens'],
    ['/v1/chat/completions', { messages: user('x'), stream: 'yes' }, 'stream'],
    ['/v1/chat/completions', { messages: user('x'), stop: [1] }, 'stop[0]'],
    ['/v1/chat/completions', { messages: user('x'), tools: {} }, 'tools'],
    ['/v1/chat/completions', { messages: user('x'), tools: [{ type: 'function', function: { description: 'no name' } }] }, 'tools[0].function'],
    ['/v1/chat/completions', { messages: [{ role: 'assistant', tool_calls: [{ id: 'c', function: { name: 5 } }] }] }, 'messages[0].tool_calls[0].function.name'],
    ['/v1/responses', { input: 5 }, 'input'],
    ['/v1/responses', { input: [{ type: 'message', role: 'user', content: 5 }] }, 'input[0].content'],
    ['/v1/responses', { input: 'x', tool_choice: 'sometimes' }, 'tool_choice'],
    ['/v1/responses', { input: 'x', reasoning: { effort: 'ultra' } }, 'reasoning.effort'],
    ['/v1/messages', { max_tokens: 10 }, 'messages'],
    ['/v1/messages', { max_tokens: 'ten', messages: user('x') }, 'max_tokens'],
    ['/v1/messages', { messages: [{ role: 'user', content: [{ type: 'text', text: 5 }] }] }, 'messages[0].content[0].text'],
    ['/v1/messages', { messages: user('x'), system: 5 }, 'system'],
    ['/v1/messages', { messages: user('x'), output_config: { effort: 3 } }, 'output_config.effort'],
  ];
  for (const [path, body, param] of cases) {
    const r = await raw('POST', path, { body });
    assert.equal(r.status, 400, `${path} ${JSON.stringify(body)} -> ${r.status} ${r.text}`);
    if (path === '/v1/messages') {
      assert.ok(anthShape(r.json), r.text);
      assert.ok(r.json.error.message.includes(param), `${r.json.error.message} should name ${param}`);
    } else {
      assert.ok(openaiShape(r.json), r.text);
      assert.equal(r.json.error.param, param, `${JSON.stringify(body)}: ${r.text}`);
    }
  }
});

test('oversized bodies -> 413, the connection stays usable', async () => {
  const big = JSON.stringify({ messages: user('x'.repeat(1_200_000)) });   // server runs with --max-body 1 MiB
  for (const [path, shape] of [['/v1/chat/completions', openaiShape], ['/v1/messages', anthShape]]) {
    const r = await raw('POST', path, { body: big });
    assert.equal(r.status, 413);
    assert.ok(shape(r.json), r.text);
  }
  const h = await raw('GET', '/health');
  assert.equal(h.status, 200);
});

test('oversized headers are refused', async () => {
  const r = await fetch(`${BASE}/health`, { headers: { 'x-big': 'y'.repeat(100_000) } }).then((x) => x.status, () => 'reset');
  assert.ok(r === 431 || r === 413 || r === 'reset', `got ${r}`);
  assert.equal((await raw('GET', '/health')).status, 200);
});

test('prompt longer than the context -> 400 context_length_exceeded', async () => {
  const words = Array.from({ length: 9000 }, (_, i) => `w${i % 97}`).join(' ');
  const r = await raw('POST', '/v1/chat/completions', { body: { messages: user(words) } });
  assert.equal(r.status, 400);
  assert.equal(r.json.error.code, 'context_length_exceeded');
  assert.ok(r.json.error.n_prompt_tokens >= r.json.error.n_ctx);
  const a = await raw('POST', '/v1/messages', { body: { max_tokens: 5, messages: user(words) } });
  assert.equal(a.status, 400);
  assert.ok(anthShape(a.json));
});

test('unknown endpoints -> 404, wrong methods -> 405, each API shape', async () => {
  const r1 = await raw('POST', '/v1/nope', { body: {} });
  assert.equal(r1.status, 404);
  assert.ok(openaiShape(r1.json));
  const r2 = await raw('POST', '/v1/messages/nope', { body: {} });
  assert.equal(r2.status, 404);
  assert.ok(anthShape(r2.json));
  assert.equal(r2.json.error.type, 'not_found_error');
  const r3 = await raw('GET', '/v1/chat/completions');
  assert.equal(r3.status, 405);
  assert.ok(openaiShape(r3.json));
  const r4 = await raw('DELETE', '/v1/models');
  assert.equal(r4.status, 405);
  const r5 = await raw('POST', '/v1/chat/completions', { body: '{"messages":[{"role":"user","content":"hi"}]}', headers: { 'content-encoding': 'gzip' } });
  assert.equal(r5.status, 415);
});

test('auth: bearer or x-api-key required; /health open', async () => {
  const none = await raw('POST', '/v1/chat/completions', { body: { messages: user('x') }, auth: false });
  assert.equal(none.status, 401);
  assert.ok(openaiShape(none.json));
  const wrong = await raw('POST', '/v1/messages', { body: { messages: user('x') }, headers: { 'x-api-key': 'nope' } });
  assert.equal(wrong.status, 401);
  assert.equal(wrong.json.error.type, 'authentication_error');
  const xkey = await raw('POST', '/v1/messages', { body: { max_tokens: 8, messages: user('x') }, headers: { 'x-api-key': KEY } });
  assert.equal(xkey.status, 200);
  const models = await raw('GET', '/v1/models', { auth: false });
  assert.equal(models.status, 401);
  assert.equal((await raw('GET', '/health', { auth: false })).status, 200);
  assert.equal((await fetch(`${BASE}/`, { method: 'HEAD' })).status, 200);   // Claude Code probes HEAD /
});

test('CORS headers and preflight', async () => {
  const pre = await fetch(`${BASE}/v1/chat/completions`, { method: 'OPTIONS', headers: { origin: 'http://x', 'access-control-request-method': 'POST' } });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get('access-control-allow-origin'), '*');
  const m = await raw('GET', '/v1/models');
  assert.equal(m.headers.get('access-control-allow-origin'), '*');
  const err = await raw('POST', '/v1/nope', { body: {} });
  assert.equal(err.headers.get('access-control-allow-origin'), '*');
});

test('queue full -> 503 with retry-after while other endpoints keep answering', async () => {
  // one running + 2 queued (--max-queue 2); the next must be refused
  const slow = { messages: user('[[long 4]] [[slow 60]]'), reasoning_effort: 'none' };
  const running = [];
  for (let i = 0; i < 3; i++) {
    running.push(raw('POST', '/v1/chat/completions', { body: slow }));
    await new Promise((r) => setTimeout(r, 100));
  }
  const health = await raw('GET', '/health');
  assert.equal(health.status, 200);
  assert.equal(health.json.busy, true);
  const refused = await raw('POST', '/v1/messages', { body: { max_tokens: 4, messages: user('x') } });
  assert.equal(refused.status, 503);
  assert.ok(anthShape(refused.json));
  assert.equal(refused.json.error.type, 'overloaded_error');
  assert.equal(refused.headers.get('retry-after'), '1');
  const done = await Promise.all(running);
  for (const d of done) assert.equal(d.status, 200);
});

test('client disconnect cancels the generation', async () => {
  for (const stream of [true, false]) {
    const ctl = new AbortController();
    const t0 = Date.now();
    const p = fetch(`${BASE}/v1/chat/completions`, {
      method: 'POST', signal: ctl.signal,
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ messages: user('[[long 400]] [[slow 25]]'), stream, reasoning_effort: 'none' }),   // ~10 s
    });
    if (stream) {
      const res = await p;
      const reader = res.body.getReader();
      await reader.read();                           // first bytes arrived: generation is running
    } else {
      await new Promise((r) => setTimeout(r, 300));
    }
    ctl.abort();
    await p.then((r) => r.body?.cancel()).catch(() => {});
    // the engine is free again long before the 10 s the request would take
    const r = await raw('POST', '/v1/chat/completions', { body: { messages: user('hi'), reasoning_effort: 'none' } });
    assert.equal(r.status, 200);
    assert.ok(Date.now() - t0 < 4000, `engine still busy after abort (stream=${stream}): ${Date.now() - t0} ms`);
  }
});

test('keep-alive comments / pings during a quiet stream', async () => {
  // server runs with --keepalive-ms 300; tokens come every 500 ms
  const c = await raw('POST', '/v1/chat/completions', { body: { messages: user('[[long 1]] [[slow 500]]'), stream: true, reasoning_effort: 'none' } });
  assert.ok(parseSSE(c.text).some((e) => e.comment === 'keep-alive'), c.text);
  const a = await raw('POST', '/v1/messages', { body: { max_tokens: 64, messages: user('[[long 1]] [[slow 500]]'), stream: true, thinking: { type: 'disabled' } } });
  const pings = parseSSE(a.text).filter((e) => e.event === 'ping');
  assert.ok(pings.length >= 2, a.text);   // the initial ping plus keep-alives
});
