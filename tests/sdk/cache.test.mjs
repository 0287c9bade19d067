// The official openai SDK against a streamed cache hit: the second identical
// streamed request is answered from llmrouter's cache (x-cache: HIT) with an
// SSE replay the SDK must parse into the same text, with a proper ending.
// Run by tests/integration/test_cache.py with LLMROUTER_URL set.
import OpenAI from 'openai';

const client = new OpenAI({ baseURL: process.env.LLMROUTER_URL, apiKey: 'client-key', maxRetries: 0, timeout: 20000 });
let passed = 0, failed = 0;
async function t(name, fn) {
  try { await fn(); console.log(`ok - ${name}`); passed++; }
  catch (e) { console.log(`not ok - ${name}: ${e && e.message}`); failed++; }
}
function assert(c, m) { if (!c) throw new Error(m); }

const params = { model: 'auto', temperature: 0, stream: true, messages: [{ role: 'user', content: 'replay me from the cache' }] };

async function collect() {
  const { data: stream, response } = await client.chat.completions.create(params).withResponse();
  let text = '', finish = null, chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    for (const c of chunk.choices) { text += c.delta?.content ?? ''; if (c.finish_reason) finish = c.finish_reason; }
  }
  return { text, finish, chunks, cache: response.headers.get('x-cache') };
}

await t('streamed miss then streamed hit parse to the same text', async () => {
  const a = await collect();
  const b = await collect();
  assert(a.cache === 'MISS', `first x-cache ${a.cache}`);
  assert(b.cache === 'HIT', `second x-cache ${b.cache}`);
  assert(a.text.length > 0 && a.text === b.text, `texts differ: ${JSON.stringify(a.text)} vs ${JSON.stringify(b.text)}`);
  assert(b.finish === 'stop', `finish_reason ${b.finish}`);
  assert(b.chunks >= 3, `${b.chunks} chunks`);
});

await t('stream helper finalChatCompletion on a hit', async () => {
  const s = client.chat.completions.stream(params);
  const final = await s.finalChatCompletion();
  assert(final.choices[0].message.content.startsWith('Simulated reply from'), final.choices[0].message.content);
  assert(final.choices[0].finish_reason === 'stop', final.choices[0].finish_reason);
});

await t('non-streamed request hits the entry the stream stored', async () => {
  const { data, response } = await client.chat.completions.create({ ...params, stream: false }).withResponse();
  assert(response.headers.get('x-cache') === 'HIT', response.headers.get('x-cache'));
  assert(data.choices[0].message.content.startsWith('Simulated reply from'), 'content');
});

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
