// OpenAI Responses (what Codex uses) through the official openai SDK.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openai, MODEL, weatherResp, EXPECTED_ARGS, raw, parseSSE } from './helpers.mjs';

test('responses non-streaming: reasoning item, message item, usage', async () => {
  const r = await openai.responses.create({ model: MODEL, input: 'hi', reasoning: { summary: 'auto' } });
  assert.equal(r.object, 'response');
  assert.equal(r.status, 'completed');
  assert.match(r.id, /^resp_/);
  const [rs, msg] = r.output;
  assert.equal(rs.type, 'reasoning');
  assert.equal(rs.summary[0].text, 'Thinking it over.');
  assert.equal(rs.content[0].text, 'Thinking it over.');
  assert.equal(msg.type, 'message');
  assert.equal(msg.content[0].type, 'output_text');
  assert.equal(r.output_text, 'Hello from the scripted backend.');
  assert.equal(r.usage.total_tokens, r.usage.input_tokens + r.usage.output_tokens);
  assert.ok(r.usage.output_tokens_details.reasoning_tokens > 0);
});

test('responses streaming: documented events in order, monotonic sequence_number', async () => {
  const res = await raw('POST', '/v1/responses', { body: { model: MODEL, input: 'hi', stream: true } });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /text\/event-stream/);
  const evs = parseSSE(res.text).filter((e) => e.data).map((e) => ({ event: e.event, ...JSON.parse(e.data) }));
  const types = evs.map((e) => e.type);
  assert.equal(types[0], 'response.created');
  assert.equal(types[1], 'response.in_progress');
  assert.equal(types.at(-1), 'response.completed');
  evs.forEach((e, i) => { assert.equal(e.sequence_number, i); assert.equal(e.event, e.type); });
  // every delta follows its item and part
  const seen = new Set();
  for (const e of evs) {
    if (e.type === 'response.output_item.added') seen.add(`item${e.output_index}`);
    if (e.type === 'response.content_part.added') seen.add(`part${e.output_index}.${e.content_index}`);
    if (e.type.endsWith('.delta')) {
      assert.ok(seen.has(`item${e.output_index}`), `${e.type} before output_item.added`);
      if (e.content_index !== undefined) assert.ok(seen.has(`part${e.output_index}.${e.content_index}`));
    }
  }
  const done = evs.filter((e) => e.type === 'response.output_item.done').map((e) => e.item);
  assert.deepEqual(done.map((i) => i.type), ['reasoning', 'message']);
  assert.equal(done[1].content[0].text, 'Hello from the scripted backend.');
  const fin = evs.at(-1).response;
  assert.equal(fin.output.length, 2);
  assert.equal(fin.usage.total_tokens, fin.usage.input_tokens + fin.usage.output_tokens);
});

test('responses stream helper (strict about event names/order) finalResponse', async () => {
  for (const summary of [undefined, 'auto']) {
    const s = openai.responses.stream({ model: MODEL, input: 'hi', reasoning: summary ? { summary } : undefined });
    const r = await s.finalResponse();
    assert.equal(r.output_text, 'Hello from the scripted backend.');
  }
});

test('responses function call, output round trip, encrypted reasoning replay', async () => {
  const input = [
    { role: 'developer', content: 'You are Codex.' },
    { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'weather? [[tool]]' }] },
  ];
  const r = await openai.responses.create({
    model: MODEL, input, tools: [weatherResp], tool_choice: 'auto', parallel_tool_calls: true,
    reasoning: { summary: 'auto' }, include: ['reasoning.encrypted_content'], store: false,
  });
  const call = r.output.find((o) => o.type === 'function_call');
  assert.ok(call);
  assert.equal(call.name, 'get_weather');
  assert.match(call.call_id, /^call_/);
  assert.deepEqual(JSON.parse(call.arguments), EXPECTED_ARGS);
  const rs = r.output.find((o) => o.type === 'reasoning');
  assert.match(rs.encrypted_content, /^fpr1:/);
  const r2 = await openai.responses.create({
    model: MODEL, tools: [weatherResp], store: false, include: ['reasoning.encrypted_content'],
    input: [...input, ...r.output, { type: 'function_call_output', call_id: call.call_id, output: 'rain' }],
  });
  assert.equal(r2.output_text, 'The tool said: rain');
  assert.ok(r2.usage.input_tokens_details.cached_tokens >= r.usage.input_tokens + r.usage.output_tokens,
    `cached ${r2.usage.input_tokens_details.cached_tokens} < ${r.usage.input_tokens} + ${r.usage.output_tokens}`);
});

test('responses streamed function call and namespace tools', async () => {
  const ns = { type: 'namespace', name: 'agents', description: 'sub agents', tools: [{ type: 'function', name: 'spawn', parameters: { type: 'object', properties: {} } }] };
  const res = await raw('POST', '/v1/responses', {
    body: { model: MODEL, input: '[[tool]]', tools: [ns, { type: 'web_search' }], stream: true },
  });
  const evs = parseSSE(res.text).filter((e) => e.data).map((e) => JSON.parse(e.data));
  const added = evs.find((e) => e.type === 'response.output_item.added' && e.item.type === 'function_call');
  assert.equal(added.item.arguments, '');
  const delta = evs.find((e) => e.type === 'response.function_call_arguments.delta');
  const done = evs.find((e) => e.type === 'response.output_item.done' && e.item.type === 'function_call');
  assert.equal(delta.delta, done.item.arguments);
  assert.equal(done.item.name, 'spawn');            // the model saw "agents.spawn"
  assert.equal(done.item.namespace, 'agents');
  assert.equal(evs.at(-1).type, 'response.completed');
  const s = openai.responses.stream({ model: MODEL, input: '[[tool]]', tools: [weatherResp] });
  const fin = await s.finalResponse();
  assert.deepEqual(JSON.parse(fin.output.find((o) => o.type === 'function_call').arguments), EXPECTED_ARGS);
});

test('responses previous_response_id continues a stored conversation', async () => {
  const first = await openai.responses.create({ model: MODEL, input: 'first question', instructions: 'be brief' });
  const alone = await openai.responses.create({ model: MODEL, input: 'second question' });
  const cont = await openai.responses.create({ model: MODEL, input: 'second question', previous_response_id: first.id });
  assert.equal(cont.previous_response_id, first.id);
  assert.ok(cont.usage.input_tokens > alone.usage.input_tokens + first.usage.output_tokens - 1,
    'the earlier turn is part of the prompt');
  const missing = await raw('POST', '/v1/responses', { body: { input: 'x', previous_response_id: 'resp_nope' } });
  assert.equal(missing.status, 400);
  assert.equal(missing.json.error.param, 'previous_response_id');
  const nostore = await openai.responses.create({ model: MODEL, input: 'q', store: false });
  const gone = await raw('POST', '/v1/responses', { body: { input: 'x', previous_response_id: nostore.id } });
  assert.equal(gone.status, 400);
});

test('responses limits: max_output_tokens -> incomplete', async () => {
  const r = await openai.responses.create({ model: MODEL, input: 'hi', max_output_tokens: 4 });
  assert.equal(r.status, 'incomplete');
  assert.equal(r.incomplete_details.reason, 'max_output_tokens');
  assert.equal(r.usage.output_tokens, 4);
  const res = await raw('POST', '/v1/responses', { body: { input: 'hi', max_output_tokens: 4, stream: true } });
  const evs = parseSSE(res.text).filter((e) => e.data).map((e) => JSON.parse(e.data));
  assert.equal(evs.at(-1).type, 'response.incomplete');
});

test('responses backend error -> response.failed', async () => {
  const res = await raw('POST', '/v1/responses', { body: { input: '[[error]]', stream: true } });
  const evs = parseSSE(res.text).filter((e) => e.data).map((e) => JSON.parse(e.data));
  assert.equal(evs.at(-1).type, 'response.failed');
  assert.equal(evs.at(-1).response.error.code, 'server_error');
});
