// Shared setup for the API tests: the server under test is started by
// run.sh, which passes its address and key in FP_BASE / FP_KEY.
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';

export const BASE = process.env.FP_BASE || 'http://127.0.0.1:8000';
export const KEY = process.env.FP_KEY || 'test-key';
export const MODEL = 'deepseek-v4-flash';

export const openai = new OpenAI({ baseURL: `${BASE}/v1`, apiKey: KEY, maxRetries: 0, timeout: 20000 });
export const anthropic = new Anthropic({ baseURL: BASE, apiKey: KEY, maxRetries: 0, timeout: 20000 });

export const weatherChat = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Get the weather for a city',
    parameters: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } }, required: ['city'] },
  },
};
export const weatherResp = {
  type: 'function', name: 'get_weather', description: 'Get the weather for a city', strict: false,
  parameters: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } }, required: ['city'] },
};
export const weatherAnth = {
  name: 'get_weather',
  description: 'Get the weather for a city',
  input_schema: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } }, required: ['city'] },
};
export const EXPECTED_ARGS = { city: 'Paris & "Lyon"', days: 3 };

// Raw HTTP request; returns { status, headers, text, json }.
export async function raw(method, path, { body, headers = {}, auth = true } = {}) {
  const h = { ...headers };
  if (auth && !h.authorization && !h['x-api-key']) h.authorization = `Bearer ${KEY}`;
  if (body !== undefined && !h['content-type']) h['content-type'] = 'application/json';
  const res = await fetch(`${BASE}${path}`, {
    method, headers: h,
    body: body === undefined ? undefined : typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, headers: res.headers, text, json };
}

// Parses an SSE body into [{event, data}] (comments returned as {comment}).
export function parseSSE(text) {
  const out = [];
  for (const block of text.split('\n\n')) {
    if (!block.trim()) continue;
    const ev = {};
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) ev.comment = line.slice(1).trim();
      else if (line.startsWith('event: ')) ev.event = line.slice(7);
      else if (line.startsWith('data: ')) ev.data = line.slice(6);
    }
    out.push(ev);
  }
  return out;
}
