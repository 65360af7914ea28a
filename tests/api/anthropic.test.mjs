// Anthropic Messages (what Claude Code uses) through the official @anthropic-ai/sdk.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { anthropic, MODEL, weatherAnth, EXPECTED_ARGS, raw, parseSSE, KEY } from './helpers.mjs';

const user = (content) => [{ role: 'user', content }];

test('messages non-streaming: thinking + text blocks, usage', async () => {
  const r = await anthropic.messages.create({ model: MODEL, max_tokens: 256, system: 'be brief', messages: user('hi') });
  assert.equal(r.type, 'message');
  assert.equal(r.role, 'assistant');
  assert.deepEqual(r.content.map((b) => b.type), ['thinking', 'text']);
  assert.equal(r.content[0].thinking, 'Thinking it over.');
  assert.ok(r.content[0].signature.length > 0);
  assert.equal(r.content[1].text, 'Hello from the scripted backend.');
  assert.equal(r.stop_reason, 'end_turn');
  assert.ok(r.usage.input_tokens + r.usage.cache_read_input_tokens > 0);
  assert.ok(r.usage.output_tokens > 0);
});

test('messages streaming: event order as Claude Code needs it', async () => {
  const s = await anthropic.messages.create({ model: MODEL, max_tokens: 256, messages: user('hi'), stream: true });
  const types = []; let text = '', thinking = '', sig = '';
  for await (const ev of s) {
    types.push(ev.type);
    if (ev.type === 'content_block_delta') {
      if (ev.delta.type === 'text_delta') text += ev.delta.text;
      if (ev.delta.type === 'thinking_delta') thinking += ev.delta.thinking;
      if (ev.delta.type === 'signature_delta') sig += ev.delta.signature;
    }
  }
  assert.equal(types[0], 'message_start');
  assert.equal(types.at(-1), 'message_stop');
  assert.equal(types.at(-2), 'message_delta');
  assert.equal(types.filter((t) => t === 'content_block_start').length, 2);
  assert.equal(types.filter((t) => t === 'content_block_stop').length, 2);
  assert.equal(thinking, 'Thinking it over.');
  assert.equal(text, 'Hello from the scripted backend.');
  assert.ok(sig.length > 0);
  const raw1 = await raw('POST', '/v1/messages', { body: { model: MODEL, max_tokens: 64, messages: user('hi'), stream: true } });
  const evs = parseSSE(raw1.text).filter((e) => e.data);
  for (const e of evs) assert.equal(e.event, JSON.parse(e.data).type);   // event: lines present and right
});

test('messages stream helper finalMessage; thinking disabled', async () => {
  const m = await anthropic.messages.stream({ model: MODEL, max_tokens: 256, messages: user('hi'), thinking: { type: 'disabled' } }).finalMessage();
  assert.deepEqual(m.content.map((b) => b.type), ['text']);
  assert.equal(m.content[0].text, 'Hello from the scripted backend.');
});

test('tool_use via input_json_delta, tool_result round trip with exact replay', async () => {
  const messages = user('weather? [[tool]]');
  const s = await anthropic.messages.create({ model: MODEL, max_tokens: 512, messages, tools: [weatherAnth], stream: true });
  let json = '', start = null, stop = null;
  for await (const ev of s) {
    if (ev.type === 'content_block_start' && ev.content_block.type === 'tool_use') start = ev.content_block;
    if (ev.type === 'content_block_delta' && ev.delta.type === 'input_json_delta') json += ev.delta.partial_json;
    if (ev.type === 'message_delta') stop = ev.delta.stop_reason;
  }
  assert.equal(start.name, 'get_weather');
  assert.deepEqual(start.input, {});
  assert.match(start.id, /^toolu_/);
  assert.deepEqual(JSON.parse(json), EXPECTED_ARGS);
  assert.equal(stop, 'tool_use');

  const r = await anthropic.messages.create({ model: MODEL, max_tokens: 512, messages, tools: [weatherAnth], tool_choice: { type: 'auto' } });
  const use = r.content.find((b) => b.type === 'tool_use');
  assert.deepEqual(use.input, EXPECTED_ARGS);
  assert.equal(r.stop_reason, 'tool_use');
  messages.push({ role: 'assistant', content: r.content });
  messages.push({ role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: '{"temp_c": 21}', cache_control: { type: 'ephemeral' } }] });
  const r2 = await anthropic.messages.create({ model: MODEL, max_tokens: 512, messages, tools: [weatherAnth] });
  assert.equal(r2.content.at(-1).text, 'The tool said: {"temp_c": 21}');
  assert.ok(r2.usage.cache_read_input_tokens >= r.usage.input_tokens + r.usage.cache_read_input_tokens + r.usage.output_tokens,
    'exact replay keeps the prompt prefix');
});

test('stop_sequences -> stop_sequence; max_tokens -> max_tokens', async () => {
  const r = await anthropic.messages.create({ model: MODEL, max_tokens: 256, messages: user('[[stop]]'), stop_sequences: ['STOP'] });
  assert.equal(r.stop_reason, 'stop_sequence');
  assert.equal(r.stop_sequence, 'STOP');
  assert.equal(r.content.at(-1).text, 'one two ');
  const r2 = await anthropic.messages.create({ model: MODEL, max_tokens: 2, messages: user('hi') });
  assert.equal(r2.stop_reason, 'max_tokens');
  assert.equal(r2.usage.output_tokens, 2);
});

test('Claude Code request shape is accepted', async () => {
  const body = {
    model: MODEL, max_tokens: 32000, stream: true, thinking: { type: 'adaptive' },
    context_management: { edits: [{ type: 'clear_thinking_20251015', keep: 'all' }] },
    output_config: { effort: 'high' }, metadata: { user_id: '{"device_id":"d"}' },
    system: [
      { type: 'text', text: 'x-anthropic-billing-header: cc_version=2.1.197.123; cc_entrypoint=sdk-cli;' },
      { type: 'text', text: 'You are a Claude agent.', cache_control: { type: 'ephemeral' } },
    ],
    messages: [
      { role: 'user', content: [{ type: 'text', text: '<system-reminder>date</system-reminder>' }, { type: 'text', text: 'say hi', cache_control: { type: 'ephemeral' } }] },
      { role: 'system', content: 'Available agent types: none' },
    ],
    tools: [{ name: 'Bash', description: 'run', input_schema: { $schema: 'https://json-schema.org/draft/2020-12/schema', type: 'object', properties: { command: { type: 'string' } }, required: ['command'], additionalProperties: false } }],
  };
  const res = await raw('POST', '/v1/messages?beta=true', {
    body, headers: { 'anthropic-version': '2023-06-01', 'anthropic-beta': 'claude-code-20250219', 'x-api-key': KEY },
  });
  assert.equal(res.status, 200);
  const types = parseSSE(res.text).filter((e) => e.event).map((e) => e.event);
  assert.equal(types[0], 'message_start');
  assert.ok(types.includes('content_block_stop'));
  assert.equal(types.at(-1), 'message_stop');
  // the billing header (changes per conversation) is not part of the prompt
  const a = await anthropic.messages.countTokens({ model: MODEL, system: body.system, messages: body.messages });
  const b = await anthropic.messages.countTokens({ model: MODEL, system: body.system.slice(1), messages: body.messages });
  assert.equal(a.input_tokens, b.input_tokens);
});

test('count_tokens matches the prompt the model sees', async () => {
  const c = await anthropic.messages.countTokens({ model: MODEL, messages: user('hello there'), thinking: { type: 'disabled' } });
  const r = await anthropic.messages.create({ model: MODEL, max_tokens: 16, messages: user('hello there'), thinking: { type: 'disabled' } });
  assert.equal(c.input_tokens, r.usage.input_tokens + r.usage.cache_read_input_tokens);
});

test('models list through the Anthropic SDK', async () => {
  const ids = [];
  for await (const m of anthropic.models.list()) ids.push(m.id);
  assert.deepEqual(ids, [MODEL]);
});

test('backend error -> error event / 500 in Anthropic shape', async () => {
  await assert.rejects(anthropic.messages.create({ model: MODEL, max_tokens: 64, messages: user('[[error]]') }),
    (e) => e.status === 500 && e.error?.type === 'error' && e.error?.error?.type === 'api_error');
  const res = await raw('POST', '/v1/messages', { body: { max_tokens: 64, messages: user('[[error]]'), stream: true } });
  const evs = parseSSE(res.text).filter((e) => e.event);
  assert.equal(evs.at(-1).event, 'error');
  assert.equal(JSON.parse(evs.at(-1).data).error.type, 'api_error');
});
