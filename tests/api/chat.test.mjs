// OpenAI Chat Completions + legacy Completions through the official openai SDK.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openai, MODEL, weatherChat, EXPECTED_ARGS, raw, parseSSE } from './helpers.mjs';

const user = (content) => [{ role: 'user', content }];

test('chat non-streaming with reasoning', async () => {
  const r = await openai.chat.completions.create({ model: MODEL, messages: user('hi') });
  const m = r.choices[0].message;
  assert.equal(m.content, 'Hello from the scripted backend.');
  assert.equal(m.reasoning_content, 'Thinking it over.');
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.equal(r.object, 'chat.completion');
  assert.ok(r.usage.prompt_tokens > 0);
  assert.ok(r.usage.completion_tokens > 0);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  assert.ok(r.usage.completion_tokens_details.reasoning_tokens > 0);
});

test('chat thinking off (reasoning_effort none, deepseek-chat, thinking disabled)', async () => {
  for (const extra of [{ reasoning_effort: 'none' }, { model: 'deepseek-chat' }, { thinking: { type: 'disabled' } }]) {
    const r = await openai.chat.completions.create({ model: MODEL, messages: user('hi'), ...extra });
    assert.equal(r.choices[0].message.content, 'Hello from the scripted backend.');
    assert.equal(r.choices[0].message.reasoning_content, undefined);
    assert.equal(r.usage.completion_tokens_details.reasoning_tokens, 0);
  }
  const bad = await raw('POST', '/v1/chat/completions', { body: { messages: user('hi'), reasoning_effort: 'extreme' } });
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.param, 'reasoning_effort');
});

test('chat streaming: reasoning and content deltas, finish chunk, usage chunk', async () => {
  const s = await openai.chat.completions.create({
    model: MODEL, messages: user('hi'), stream: true, stream_options: { include_usage: true },
  });
  let reasoning = '', content = '', finish = null, usage = null, first = null;
  for await (const c of s) {
    if (!first) first = c;
    const ch = c.choices[0];
    if (ch) {
      reasoning += ch.delta.reasoning_content ?? '';
      content += ch.delta.content ?? '';
      if (ch.finish_reason) finish = ch.finish_reason;
    }
    if (c.usage) usage = c.usage;
  }
  assert.equal(first.choices[0].delta.role, 'assistant');
  assert.equal(reasoning, 'Thinking it over.');
  assert.equal(content, 'Hello from the scripted backend.');
  assert.equal(finish, 'stop');
  assert.ok(usage && usage.total_tokens === usage.prompt_tokens + usage.completion_tokens);
});

test('chat stream helper (strict) finalChatCompletion', async () => {
  const s = openai.chat.completions.stream({ model: MODEL, messages: user('hi') });
  const r = await s.finalChatCompletion();
  assert.equal(r.choices[0].message.content, 'Hello from the scripted backend.');
  assert.equal(r.choices[0].finish_reason, 'stop');
});

test('chat tool call, then tool result with exact replay of the sampled DSML', async () => {
  const messages = user('weather? [[tool]]');
  const r = await openai.chat.completions.create({ model: MODEL, messages, tools: [weatherChat] });
  const m = r.choices[0].message;
  assert.equal(r.choices[0].finish_reason, 'tool_calls');
  assert.equal(m.content, 'Let me check.');
  assert.equal(m.tool_calls.length, 1);
  const call = m.tool_calls[0];
  assert.match(call.id, /^call_[0-9a-f]{24}$/);
  assert.equal(call.type, 'function');
  assert.equal(call.function.name, 'get_weather');
  assert.deepEqual(JSON.parse(call.function.arguments), EXPECTED_ARGS);
  // send the call back re-serialized (as opencode/pi do) plus the result
  messages.push({
    role: 'assistant', content: m.content, reasoning_content: m.reasoning_content,
    tool_calls: [{ ...call, function: { ...call.function, arguments: JSON.stringify(EXPECTED_ARGS, null, 1) } }],
  });
  messages.push({ role: 'tool', tool_call_id: call.id, content: 'sunny, 21C' });
  const r2 = await openai.chat.completions.create({ model: MODEL, messages, tools: [weatherChat] });
  assert.equal(r2.choices[0].message.content, 'The tool said: sunny, 21C');
  // The scripted sample writes " 3 " where canonical DSML would write "3": only an
  // exact replay makes the new prompt extend the old prompt + output token for token.
  assert.ok(r2.usage.prompt_tokens_details.cached_tokens >= r.usage.prompt_tokens + r.usage.completion_tokens,
    `cached ${r2.usage.prompt_tokens_details.cached_tokens} < ${r.usage.prompt_tokens} + ${r.usage.completion_tokens}`);
});

test('chat tool call streamed', async () => {
  const s = await openai.chat.completions.create({
    model: MODEL, messages: user('weather? [[tool]]'), tools: [weatherChat], stream: true,
  });
  let content = '', finish = null; const calls = [];
  for await (const c of s) {
    const ch = c.choices[0];
    if (!ch) continue;
    content += ch.delta.content ?? '';
    for (const tc of ch.delta.tool_calls ?? []) {
      calls[tc.index] ??= { id: '', name: '', args: '' };
      if (tc.id) calls[tc.index].id = tc.id;
      if (tc.function?.name) calls[tc.index].name += tc.function.name;
      calls[tc.index].args += tc.function?.arguments ?? '';
    }
    if (ch.finish_reason) finish = ch.finish_reason;
  }
  assert.equal(content, 'Let me check.');   // the separator before the block is not content
  assert.equal(finish, 'tool_calls');
  assert.equal(calls.length, 1);
  assert.equal(calls[0].name, 'get_weather');
  assert.deepEqual(JSON.parse(calls[0].args), EXPECTED_ARGS);
  const h = openai.chat.completions.stream({ model: MODEL, messages: user('[[tool]]'), tools: [weatherChat] });
  const fin = await h.finalChatCompletion();
  assert.deepEqual(JSON.parse(fin.choices[0].message.tool_calls[0].function.arguments), EXPECTED_ARGS);
});

test('chat: no tool calls when the request declared no tools', async () => {
  const r = await openai.chat.completions.create({ model: MODEL, messages: user('[[tool]]') });
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.equal(r.choices[0].message.tool_calls, undefined);
  assert.match(r.choices[0].message.content, /DSML/);
  const r2 = await openai.chat.completions.create({ model: MODEL, messages: user('[[tool]]'), tools: [weatherChat], tool_choice: 'none' });
  assert.equal(r2.choices[0].message.tool_calls, undefined);
});

test('chat stop sequences and length limits', async () => {
  const r = await openai.chat.completions.create({ model: MODEL, messages: user('[[stop]]'), stop: ['STOP'] });
  assert.equal(r.choices[0].message.content, 'one two ');
  assert.equal(r.choices[0].finish_reason, 'stop');
  // reasoning contains no stop match ("Thinking it over."); a stop on "over" must not cut it
  const r2 = await openai.chat.completions.create({ model: MODEL, messages: user('[[stop]]'), stop: 'over' });
  assert.equal(r2.choices[0].message.reasoning_content, 'Thinking it over.');
  assert.equal(r2.choices[0].message.content, 'one two STOP three four');
  for (const key of ['max_tokens', 'max_completion_tokens']) {
    const r3 = await openai.chat.completions.create({ model: MODEL, messages: user('hi'), [key]: 3, reasoning_effort: 'none' });
    assert.equal(r3.choices[0].finish_reason, 'length');
    assert.equal(r3.usage.completion_tokens, 3);
  }
  const r4 = await openai.chat.completions.create({ model: MODEL, messages: user('hi'), max_tokens: 0 });
  assert.equal(r4.choices[0].finish_reason, 'length');
  assert.equal(r4.usage.completion_tokens, 0);
});

test('chat streaming keeps UTF-8 sequences whole', async () => {
  const s = await openai.chat.completions.create({ model: MODEL, messages: user('[[unicode]]'), stream: true, reasoning_effort: 'none' });
  let content = '';
  for await (const c of s) content += c.choices[0]?.delta?.content ?? '';
  assert.equal(content, 'café 世界 🙂 done');
});

test('chat backend error: 500 non-streaming, error event streaming', async () => {
  await assert.rejects(openai.chat.completions.create({ model: MODEL, messages: user('[[error]]') }), (e) => e.status === 500);
  const res = await raw('POST', '/v1/chat/completions', { body: { messages: user('[[error]]'), stream: true } });
  assert.equal(res.status, 200);
  const evs = parseSSE(res.text);
  const last = JSON.parse(evs.at(-1).data);
  assert.equal(last.error.type, 'server_error');
});

test('chat accepts developer role, content part arrays, reasoning_content history', async () => {
  const r = await openai.chat.completions.create({
    model: MODEL, max_completion_tokens: 64, store: false, stream_options: null,
    messages: [
      { role: 'developer', content: 'You are pi.' },
      { role: 'user', content: [{ type: 'text', text: 'say hi' }] },
      { role: 'assistant', content: null, reasoning_content: '' },
      { role: 'user', content: [{ type: 'text', text: 'again' }, { type: 'image_url', image_url: { url: 'data:,' } }] },
    ],
  });
  assert.equal(r.choices[0].message.content, 'Hello from the scripted backend.');
});

test('chat response_format adds the official Response Format section', async () => {
  const plain = await openai.chat.completions.create({ model: MODEL, messages: user('hi'), max_tokens: 1 });
  const text = await openai.chat.completions.create({ model: MODEL, messages: user('hi'), max_tokens: 1, response_format: { type: 'text' } });
  const json = await openai.chat.completions.create({ model: MODEL, messages: user('hi'), max_tokens: 1, response_format: { type: 'json_object' } });
  assert.equal(text.usage.prompt_tokens, plain.usage.prompt_tokens);
  assert.ok(json.usage.prompt_tokens > plain.usage.prompt_tokens + 20);
  const bad = await raw('POST', '/v1/chat/completions', { body: { messages: user('hi'), response_format: 'json' } });
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.param, 'response_format');
});

test('legacy completions: non-streaming and streaming, raw text', async () => {
  const r = await openai.completions.create({ model: MODEL, prompt: 'hi', max_tokens: 100 });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices[0].text, 'Thinking it over.</think>Hello from the scripted backend.');
  assert.equal(r.choices[0].finish_reason, 'stop');
  const s = await openai.completions.create({ model: MODEL, prompt: 'hi', stream: true, think: false, stream_options: { include_usage: true } });
  let text = '', finish = null, usage = null;
  for await (const c of s) {
    text += c.choices[0]?.text ?? '';
    if (c.choices[0]?.finish_reason) finish = c.choices[0].finish_reason;
    if (c.usage) usage = c.usage;
  }
  assert.equal(text, 'Hello from the scripted backend.');
  assert.equal(finish, 'stop');
  assert.ok(usage.completion_tokens > 0);
  const bad = await raw('POST', '/v1/completions', { body: { prompt: 5 } });
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.param, 'prompt');
});

test('models endpoints', async () => {
  const list = await openai.models.list();
  assert.deepEqual(list.data.map((m) => m.id), [MODEL]);
  const m = await openai.models.retrieve(MODEL);
  assert.equal(m.id, MODEL);
  await assert.rejects(openai.models.retrieve('gpt-none'), (e) => e.status === 404);
});
