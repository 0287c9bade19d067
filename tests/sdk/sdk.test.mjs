// Official OpenAI Node SDK against a running llmrouter.
//
// Environment:
//   LLMROUTER_URL       base URL with /v1, e.g. http://127.0.0.1:18080/v1 (required)
//   LLMROUTER_URL_NOV1  the same server without /v1 (required)
//   SIM_STATS_URL       simulated upstream's stats, e.g. http://127.0.0.1:PORT/_sim/stats
//                       (optional). With it, the abort test also checks that the
//                       upstream stream was cancelled, and a last test reads
//                       /_sim/requests to check the client key never went upstream.
//   SIM_KEY_GOOD        optional; if set with SIM_STATS_URL, requests to the "good"
//                       provider must carry "Bearer $SIM_KEY_GOOD".
//
// The daemon must run with tests/integration/llmrouter-test.yaml in front of
// tests/sim/simprovider.py. Output: one "ok - name" / "not ok - name: reason"
// line per test, then exactly one "N passed, M failed" line; exit 1 on any failure.

import OpenAI from 'openai';
import process from 'node:process';

const BASE = process.env.LLMROUTER_URL;
const BASE_NOV1 = process.env.LLMROUTER_URL_NOV1;
const SIM_STATS_URL = process.env.SIM_STATS_URL || '';
const CLIENT_KEY = 'client-key-not-forwarded';
const PROMPT = 'Say hello';

if (!BASE || !BASE_NOV1) {
  console.error('LLMROUTER_URL and LLMROUTER_URL_NOV1 must be set');
  console.log('0 passed, 1 failed');
  process.exit(1);
}

const mkClient = (baseURL) =>
  new OpenAI({ baseURL, apiKey: CLIENT_KEY, maxRetries: 0, timeout: 20000 });
const client = mkClient(BASE);
const clientNoV1 = mkClient(BASE_NOV1);

// ---------------------------------------------------------------- helpers

class AssertionError extends Error {}

function assert(cond, msg) {
  if (!cond) throw new AssertionError(msg);
}

function eq(actual, expected, what) {
  assert(
    actual === expected,
    `${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`,
  );
}

function startsWith(s, prefix, what) {
  assert(
    typeof s === 'string' && s.startsWith(prefix),
    `${what}: expected a string starting with ${JSON.stringify(prefix)}, got ${JSON.stringify(s)}`,
  );
}

function header(response, name) {
  return response.headers.get(name);
}

function checkRouterHeaders(response, want, what) {
  for (const [name, value] of Object.entries(want)) {
    eq(header(response, name), value, `${what} header ${name}`);
  }
}

// Runs fn, which must throw; returns the error.
async function expectThrow(fn, what) {
  try {
    await fn();
  } catch (err) {
    if (err instanceof AssertionError) throw err;
    return err;
  }
  throw new AssertionError(`${what}: expected an error, the call succeeded`);
}

function describeError(err) {
  if (err instanceof AssertionError) return err.message;
  let s = `${err?.constructor?.name ?? 'Error'}: ${err?.message ?? String(err)}`;
  // Walk the cause chain (APIConnectionError -> TypeError 'fetch failed' -> ECONNREFUSED ...).
  const causes = [];
  for (let c = err?.cause, depth = 0; c && depth < 4; c = c.cause, depth++) {
    causes.push(c.code ? `${c.code} ${c.message ?? ''}`.trim() : c.message ?? String(c));
  }
  if (causes.length) s += ` (cause: ${causes.join(' <- ')})`;
  return s.replace(/\s+/g, ' ');
}

// Reads a chat stream to the end; returns {text, chunks, lastChoiceChunk}.
async function drainChat(stream) {
  let text = '';
  const chunks = [];
  let lastChoiceChunk = null;
  for await (const chunk of stream) {
    chunks.push(chunk);
    if (chunk.choices && chunk.choices.length > 0) {
      lastChoiceChunk = chunk;
      const c = chunk.choices[0].delta?.content;
      if (typeof c === 'string') text += c;
    }
  }
  return { text, chunks, lastChoiceChunk };
}

async function plainReply(model = 'auto', prompt = PROMPT) {
  const r = await client.chat.completions.create({
    model,
    messages: [{ role: 'user', content: prompt }],
  });
  const content = r.choices?.[0]?.message?.content;
  assert(typeof content === 'string' && content.length > 0, `non-streamed ${model} reply has no content`);
  return content;
}

function checkVectors(resp, n, dim, what) {
  assert(Array.isArray(resp.data), `${what}: data is not an array`);
  eq(resp.data.length, n, `${what}: number of embeddings`);
  const out = [];
  resp.data.forEach((item, i) => {
    eq(item.index, i, `${what}: data[${i}].index`);
    const v = item.embedding;
    assert(
      Array.isArray(v) || v instanceof Float32Array,
      `${what}: data[${i}].embedding is not an array (${typeof v})`,
    );
    eq(v.length, dim, `${what}: data[${i}].embedding length`);
    for (const x of v) {
      assert(typeof x === 'number' && Number.isFinite(x), `${what}: data[${i}] has a non-finite value ${x}`);
    }
    out.push(Array.from(v));
  });
  return out;
}

// ---------------------------------------------------------------- tests

const tests = [];
const test = (name, fn) => tests.push({ name, fn });
const skipped = [];
const skip = (name, why) => skipped.push({ name, why });

test('plain chat: content, finish_reason, usage, router headers', async () => {
  const { data, response, request_id } = await client.chat.completions
    .create({ model: 'auto', messages: [{ role: 'user', content: PROMPT }] })
    .withResponse();
  const content = data.choices?.[0]?.message?.content;
  startsWith(content, 'Simulated reply from sim-mini', 'choices[0].message.content');
  eq(data.choices[0].finish_reason, 'stop', 'finish_reason');
  eq(data.choices[0].message.role, 'assistant', 'message.role');
  assert(data.usage && data.usage.total_tokens > 0, `usage.total_tokens > 0, got ${JSON.stringify(data.usage)}`);
  checkRouterHeaders(
    response,
    {
      'x-router-tier': 'standard',
      'x-router-model': 'good-mini',
      'x-router-provider': 'good',
      'x-router-attempts': '1',
    },
    'plain chat',
  );
  const rid = header(response, 'x-request-id');
  assert(typeof rid === 'string' && rid.length > 0, 'x-request-id header missing');
  eq(request_id, rid, 'withResponse().request_id');
  eq(data._request_id, rid, 'data._request_id');
});

test('plain chat: client-supplied x-request-id is echoed', async () => {
  const { data, response } = await client.chat.completions
    .create(
      { model: 'auto', messages: [{ role: 'user', content: PROMPT }] },
      { headers: { 'x-request-id': 'sdk-test-123' } },
    )
    .withResponse();
  eq(header(response, 'x-request-id'), 'sdk-test-123', 'x-request-id header');
  eq(data._request_id, 'sdk-test-123', 'data._request_id');
});

test('plain chat through the base URL without /v1', async () => {
  const { data, response } = await clientNoV1.chat.completions
    .create({ model: 'auto', messages: [{ role: 'user', content: PROMPT }] })
    .withResponse();
  startsWith(data.choices?.[0]?.message?.content, 'Simulated reply from sim-mini', 'content');
  eq(data.choices[0].finish_reason, 'stop', 'finish_reason');
  eq(header(response, 'x-router-model'), 'good-mini', 'x-router-model');
  const withV1 = await plainReply();
  eq(data.choices[0].message.content, withV1, 'same reply as through /v1');
});

test('streamed chat equals the non-streamed reply', async () => {
  const expected = await plainReply();
  const { data: stream, response } = await client.chat.completions
    .create({ model: 'auto', messages: [{ role: 'user', content: PROMPT }], stream: true })
    .withResponse();
  const ct = header(response, 'content-type') || '';
  assert(ct.startsWith('text/event-stream'), `content-type: expected text/event-stream, got ${JSON.stringify(ct)}`);
  eq(header(response, 'x-router-model'), 'good-mini', 'x-router-model');
  const rid = header(response, 'x-request-id');
  assert(rid, 'x-request-id header missing on stream');
  const { text, chunks, lastChoiceChunk } = await drainChat(stream);
  assert(chunks.length >= 3, `expected at least 3 chunks, got ${chunks.length}`);
  eq(text, expected, 'concatenated delta.content');
  assert(lastChoiceChunk, 'no chunk with choices');
  eq(lastChoiceChunk.choices[0].finish_reason, 'stop', 'last choice chunk finish_reason');
  const ids = new Set(chunks.map((c) => c.id));
  eq(ids.size, 1, 'distinct chunk ids');
  for (const c of chunks) {
    eq(c.object, 'chat.completion.chunk', 'chunk.object');
    assert(c.usage == null, `usage present in a chunk although include_usage was not asked: ${JSON.stringify(c.usage)}`);
  }
});

test('streamed chat via chat.completions.stream() helper', async () => {
  const expected = await plainReply();
  const stream = client.chat.completions.stream({
    model: 'auto',
    messages: [{ role: 'user', content: PROMPT }],
  });
  let deltas = '';
  stream.on('content', (delta) => {
    deltas += delta;
  });
  const final = await stream.finalChatCompletion();
  eq(final.choices?.[0]?.message?.content, expected, 'finalChatCompletion content');
  eq(final.choices[0].finish_reason, 'stop', 'finalChatCompletion finish_reason');
  eq(deltas, expected, "text from 'content' events");
  eq(await stream.finalContent(), expected, 'finalContent()');
});

test('streamed chat with stream_options.include_usage', async () => {
  const stream = await client.chat.completions.create({
    model: 'auto',
    messages: [{ role: 'user', content: PROMPT }],
    stream: true,
    stream_options: { include_usage: true },
  });
  const { text, chunks } = await drainChat(stream);
  startsWith(text, 'Simulated reply from sim-mini', 'streamed text');
  assert(chunks.length >= 2, `expected at least 2 chunks, got ${chunks.length}`);
  const last = chunks[chunks.length - 1];
  assert(Array.isArray(last.choices), 'last chunk has no choices array');
  eq(last.choices.length, 0, 'last chunk choices.length');
  assert(last.usage && typeof last.usage === 'object', `last chunk usage: ${JSON.stringify(last.usage)}`);
  assert(last.usage.total_tokens > 0, `usage.total_tokens > 0, got ${JSON.stringify(last.usage)}`);
  assert(last.usage.completion_tokens > 0, `usage.completion_tokens > 0, got ${JSON.stringify(last.usage)}`);
  const withUsage = chunks.filter((c) => c.usage != null);
  eq(withUsage.length, 1, 'number of chunks carrying usage');
  // llmrouter adds the cost (good-mini: $0.15 / $0.60 per million tokens)
  const want = (last.usage.prompt_tokens * 0.15 + last.usage.completion_tokens * 0.6) / 1e6;
  assert(typeof last.usage.cost === 'number', `usage.cost missing: ${JSON.stringify(last.usage)}`);
  assert(Math.abs(last.usage.cost - want) < 1e-12, `usage.cost ${last.usage.cost}, expected ${want}`);
});

test('streamed chat without include_usage: the provider was asked, the client sees no usage chunk', async () => {
  const stream = await client.chat.completions.create({
    model: 'auto',
    messages: [{ role: 'user', content: PROMPT + ' (usage probe)' }],
    stream: true,
  });
  const { chunks } = await drainChat(stream);
  assert(chunks.length >= 3, `chunks ${chunks.length}`);
  for (const c of chunks) {
    assert(c.usage == null, `a chunk carries usage: ${JSON.stringify(c)}`);
    assert(Array.isArray(c.choices) && c.choices.length > 0, `a chunk without choices: ${JSON.stringify(c)}`);
  }
  if (process.env.SIM_STATS_URL) {
    const reqs = await (await fetch(process.env.SIM_STATS_URL.replace('/stats', '/requests'))).json();
    const mine = reqs.filter((r) => JSON.stringify(r.body || {}).includes('(usage probe)'));
    assert(mine.length === 1, `found ${mine.length} upstream requests`);
    eq(mine[0].body.stream_options?.include_usage, true, 'upstream stream_options.include_usage');
  }
});

test('tier name as model: premium', async () => {
  const { data, response } = await client.chat.completions
    .create({ model: 'premium', messages: [{ role: 'user', content: PROMPT }] })
    .withResponse();
  startsWith(data.choices?.[0]?.message?.content, 'Simulated reply from sim-large', 'content');
  checkRouterHeaders(response, { 'x-router-tier': 'premium', 'x-router-model': 'good-large' }, 'premium');
});

test('failover: f500 falls over to good-mini', async () => {
  const { data, response } = await client.chat.completions
    .create({ model: 'f500', messages: [{ role: 'user', content: PROMPT }] })
    .withResponse();
  startsWith(data.choices?.[0]?.message?.content, 'Simulated reply from sim-mini', 'content');
  eq(data.choices[0].finish_reason, 'stop', 'finish_reason');
  checkRouterHeaders(response, { 'x-router-model': 'good-mini', 'x-router-attempts': '2' }, 'f500');
});

test('failover: f429 streamed falls over to good-mini', async () => {
  const { data: stream, response } = await client.chat.completions
    .create({ model: 'f429', messages: [{ role: 'user', content: PROMPT }], stream: true })
    .withResponse();
  checkRouterHeaders(response, { 'x-router-model': 'good-mini', 'x-router-attempts': '2' }, 'f429 stream');
  const { text, lastChoiceChunk } = await drainChat(stream);
  startsWith(text, 'Simulated reply from sim-mini', 'streamed text');
  assert(lastChoiceChunk, 'no chunk with choices');
  eq(lastChoiceChunk.choices[0].finish_reason, 'stop', 'finish_reason');
});

test('models list', async () => {
  const page = await client.models.list();
  const items = page.data;
  assert(Array.isArray(items) && items.length > 0, 'models list is empty');
  const ids = new Set(items.map((m) => m.id));
  for (const id of ['auto', 'standard', 'premium', 'good-mini', 'embed-small']) {
    assert(ids.has(id), `model id ${id} missing from ${JSON.stringify([...ids])}`);
  }
  for (const m of items) {
    eq(m.object, 'model', `object of ${m.id}`);
    assert(typeof m.id === 'string' && m.id.length > 0, `bad id ${JSON.stringify(m.id)}`);
  }
  const viaNoV1 = await clientNoV1.models.list();
  eq(viaNoV1.data.length, items.length, 'models count via base URL without /v1');
});

let embedSmall = null; // vectors from the base64 path, reused below

test('embeddings: embed-small, SDK default base64', async () => {
  const r = await client.embeddings.create({ model: 'embed-small', input: ['hello', 'world'] });
  embedSmall = checkVectors(r, 2, 8, 'embed-small');
  assert(
    embedSmall[0].some((x, i) => x !== embedSmall[1][i]),
    'vectors for "hello" and "world" are identical',
  );
  assert(embedSmall[0].some((x) => x !== 0), 'vector is all zeros');
});

test('embeddings: embed-floats (upstream ignores base64) converted by the proxy', async () => {
  const r = await client.embeddings.create({ model: 'embed-floats', input: ['hello', 'world'] });
  const v = checkVectors(r, 2, 8, 'embed-floats');
  assert(embedSmall, 'embed-small vectors unavailable (previous test failed)');
  for (let i = 0; i < 2; i++) {
    for (let j = 0; j < 8; j++) {
      eq(v[i][j], embedSmall[i][j], `embed-floats[${i}][${j}] vs embed-small`);
    }
  }
});

test('embeddings: explicit encoding_format float', async () => {
  const r = await client.embeddings.create({
    model: 'embed-small',
    input: ['hello', 'world'],
    encoding_format: 'float',
  });
  const v = checkVectors(r, 2, 8, 'embed-small float');
  assert(embedSmall, 'embed-small vectors unavailable (previous test failed)');
  for (let i = 0; i < 2; i++) {
    for (let j = 0; j < 8; j++) {
      // base64 carries float32; the float form must round to the same float32.
      eq(Math.fround(v[i][j]), embedSmall[i][j], `float[${i}][${j}] as float32 vs base64`);
    }
  }
});

test('legacy completions', async () => {
  const r = await client.completions.create({ model: 'auto', prompt: 'hello' });
  const text = r.choices?.[0]?.text;
  assert(typeof text === 'string' && text.length > 0, `choices[0].text: ${JSON.stringify(text)}`);
});

test('error: unknown model -> NotFoundError 404', async () => {
  const err = await expectThrow(
    () => client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: PROMPT }] }),
    'no-such-model',
  );
  assert(err instanceof OpenAI.NotFoundError, `expected NotFoundError, got ${describeError(err)}`);
  eq(err.status, 404, 'status');
  assert(/auto/.test(err.message), `message should mention "auto": ${err.message}`);
  assert(err.error && typeof err.error.message === 'string', `error body: ${JSON.stringify(err.error)}`);
  assert(err.requestID, 'x-request-id missing on the error response');
});

test('error: missing/empty messages -> BadRequestError 400', async () => {
  const e1 = await expectThrow(
    () => client.chat.completions.create({ model: 'auto', messages: [] }),
    'messages: []',
  );
  assert(e1 instanceof OpenAI.BadRequestError, `messages: [] -> expected BadRequestError, got ${describeError(e1)}`);
  eq(e1.status, 400, 'messages: [] status');
  const e2 = await expectThrow(() => client.post('/chat/completions', { body: { model: 'auto' } }), 'no messages');
  assert(e2 instanceof OpenAI.BadRequestError, `no messages -> expected BadRequestError, got ${describeError(e2)}`);
  eq(e2.status, 400, 'no messages status');
  assert(e2.error && typeof e2.error.message === 'string', `error body: ${JSON.stringify(e2.error)}`);
});

test('error: every upstream fails (allbad) -> 502 InternalServerError', async () => {
  const err = await expectThrow(
    () => client.chat.completions.create({ model: 'allbad', messages: [{ role: 'user', content: PROMPT }] }),
    'allbad',
  );
  assert(
    err instanceof OpenAI.APIError && err.status !== undefined,
    `expected an APIError with a status, got ${describeError(err)}`,
  );
  eq(err.status, 502, 'status');
  assert(err instanceof OpenAI.InternalServerError, `expected InternalServerError, got ${err.constructor.name}`);
});

test('error: stream cut after the first chunks (fcut) throws', async () => {
  const stream = await client.chat.completions.create({
    model: 'fcut',
    messages: [{ role: 'user', content: PROMPT }],
    stream: true,
  });
  let text = '';
  let n = 0;
  let finished = false;
  let err = null;
  try {
    for await (const chunk of stream) {
      n++;
      const c = chunk.choices?.[0]?.delta?.content;
      if (typeof c === 'string') text += c;
      if (chunk.choices?.[0]?.finish_reason) finished = true;
    }
  } catch (e) {
    err = e;
  }
  assert(err !== null, `fcut stream completed silently after ${n} chunks, text ${JSON.stringify(text)}`);
  assert(err instanceof Error, `thrown value is not an Error: ${String(err)}`);
  assert(n > 0 && text.length > 0, `no content before the error (${n} chunks): ${describeError(err)}`);
  assert(!finished, 'a finish_reason arrived before the error');
});

async function simStats() {
  const res = await fetch(SIM_STATS_URL, { signal: AbortSignal.timeout(5000) });
  if (res.status !== 200) throw new AssertionError(`GET ${SIM_STATS_URL}: status ${res.status}`);
  return res.json();
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('abort: breaking out of a slow stream, then the daemon still serves', async () => {
  const before = SIM_STATS_URL ? await simStats() : null;
  const started = Date.now();
  const stream = await client.chat.completions.create({
    model: 'slowstream',
    messages: [{ role: 'user', content: PROMPT }],
    stream: true,
  });
  let n = 0;
  for await (const _chunk of stream) {
    if (++n >= 2) break; // aborts the request
  }
  eq(n, 2, 'chunks read before abort');
  const elapsed = Date.now() - started;
  assert(elapsed < 10000, `abort took ${elapsed} ms`);
  if (before) {
    // The proxy must cancel the upstream transfer: the simulator counts the
    // stream as aborted once its next write fails.
    let now = await simStats();
    for (let i = 0; i < 50 && now.streams_aborted <= before.streams_aborted; i++) {
      await sleep(100);
      now = await simStats();
    }
    assert(
      now.streams_aborted > before.streams_aborted,
      `upstream stream not cancelled within 5 s of the client abort (streams_aborted ${before.streams_aborted} -> ${now.streams_aborted}, active_streams ${now.active_streams})`,
    );
  }
  startsWith(await plainReply(), 'Simulated reply from sim-mini', 'reply after abort');
});

if (SIM_STATS_URL) {
  test('upstream never saw the client API key; provider key sent instead', async () => {
    // /_sim/requests (next to /_sim/stats) lists the last 50 upstream requests with their headers.
    const url = new URL('requests', SIM_STATS_URL).href;
    const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
    eq(res.status, 200, `GET ${url} status`);
    const recent = await res.json();
    assert(Array.isArray(recent) && recent.length > 0, `no upstream requests recorded at ${url}`);
    for (const r of recent) {
      const auth = r.headers?.authorization ?? '';
      assert(!JSON.stringify(r.headers ?? {}).includes(CLIENT_KEY), `client key forwarded upstream on ${r.path}`);
      if (process.env.SIM_KEY_GOOD && /^\/v1\//.test(r.path)) {
        // unprefixed /v1 paths are the "good" provider, whose key comes from SIM_KEY_GOOD
        eq(auth, `Bearer ${process.env.SIM_KEY_GOOD}`, `authorization on ${r.path}`);
      }
    }
  });
} else {
  skip('upstream never saw the client API key', 'SIM_STATS_URL not set');
}

// ---------------------------------------------------------------- runner

let passed = 0;
let failed = 0;
for (const { name, fn } of tests) {
  try {
    await fn();
    passed++;
    console.log(`ok - ${name}`);
  } catch (err) {
    failed++;
    console.log(`not ok - ${name}: ${describeError(err)}`);
  }
}
for (const { name, why } of skipped) console.log(`# skip - ${name}: ${why}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
