// Official OpenAI Node SDK through llmrouter: tool calls (plain, streamed,
// parallel), runTools, structured outputs (chat.completions.parse with zod)
// and n > 1.
//
// Environment: LLMROUTER_URL (with /v1, required); SIM_STATS_URL (optional:
// lets the runTools test read what the SDK sent upstream). The daemon runs
// tests/integration/llmrouter-test.yaml in front of tests/sim/simprovider.py,
// whose answers are deterministic (tests/sim/README.md, "Chat answers"):
// a request with tools whose last message is the user's calls every tool named
// in that message, with arguments built from the tool's JSON Schema (strings
// "sim-<property>", integers 42, numbers 1.5, booleans true, enums their first
// value, one array item), ids "call_sim_<messages>_<choice>_<call>"; after tool
// messages it answers "Simulated reply from <model> with N tool results:
// name=result; ..."; json_schema answers follow the same rules; choice i > 0
// of n says "(choice i)".
//
// Output: "ok - name" / "not ok - name: reason" lines, then one
// "N passed, M failed" line; exit 1 on any failure.

import OpenAI from 'openai';
import { zodFunction, zodResponseFormat } from 'openai/helpers/zod';
import { z } from 'zod';
import process from 'node:process';

const BASE = process.env.LLMROUTER_URL;
const SIM_STATS_URL = process.env.SIM_STATS_URL || '';
if (!BASE) {
  console.error('LLMROUTER_URL must be set');
  console.log('0 passed, 1 failed');
  process.exit(1);
}
const client = new OpenAI({ baseURL: BASE, apiKey: 'client-key-tools', maxRetries: 0, timeout: 20000 });

// ---------------------------------------------------------------- helpers

class AssertionError extends Error {}
function assert(cond, msg) {
  if (!cond) throw new AssertionError(msg);
}
function eq(actual, expected, what) {
  assert(actual === expected, `${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}
// Deep equality through a canonical JSON form (key order does not matter).
function canon(v) {
  if (Array.isArray(v)) return v.map(canon);
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canon(v[k])]));
  }
  return v;
}
function deepEq(actual, expected, what) {
  const a = JSON.stringify(canon(actual));
  const e = JSON.stringify(canon(expected));
  assert(a === e, `${what}: expected ${e}, got ${a}`);
}
function describeError(err) {
  if (err instanceof AssertionError) return err.message;
  return `${err?.constructor?.name ?? 'Error'}: ${err?.message ?? String(err)}`.replace(/\s+/g, ' ');
}
const words = (s) => s.split(/\s+/).filter((w) => w.length > 0).length;

// ---------------------------------------------------------------- fixtures

// A strict tool from a zod schema (auto-parsed by the SDK) ...
const weatherZod = z.object({
  city: z.string(),
  unit: z.enum(['celsius', 'fahrenheit']),
  days: z.number().int(),
});
const weatherTool = zodFunction({ name: 'get_weather', parameters: weatherZod, description: 'Weather forecast' });
const WEATHER_ARGS = { city: 'sim-city', unit: 'celsius', days: 42 };

// ... and a plain, non-strict JSON Schema tool: only required properties are
// filled, so hour24 must not appear.
const timeParams = {
  type: 'object',
  properties: { timezone: { type: 'string' }, hour24: { type: 'boolean' } },
  required: ['timezone'],
};
const timeTool = { type: 'function', function: { name: 'get_time', description: 'Current time', parameters: timeParams } };
const TIME_ARGS = { timezone: 'sim-timezone' };

const BOTH = 'Please call get_weather and get_time for me.';
const user = (content) => [{ role: 'user', content }];

// The tool calls the simulator makes for a one-message conversation.
function expectCalls(message, want, what) {
  const calls = message?.tool_calls;
  assert(Array.isArray(calls), `${what}: message.tool_calls is not an array: ${JSON.stringify(message)}`);
  eq(calls.length, want.length, `${what}: number of tool calls`);
  want.forEach(([name, args], i) => {
    const tc = calls[i];
    eq(tc.type, 'function', `${what}: tool_calls[${i}].type`);
    eq(tc.id, `call_sim_1_0_${i}`, `${what}: tool_calls[${i}].id`);
    eq(tc.function?.name, name, `${what}: tool_calls[${i}].function.name`);
    let parsed;
    try {
      parsed = JSON.parse(tc.function.arguments);
    } catch (e) {
      throw new AssertionError(`${what}: tool_calls[${i}].function.arguments is not JSON: ${tc.function.arguments}`);
    }
    deepEq(parsed, args, `${what}: tool_calls[${i}] arguments`);
  });
}

// ---------------------------------------------------------------- tests

const tests = [];
const test = (name, fn) => tests.push({ name, fn });

test('tool calls, non-streamed: two parallel calls with schema-built arguments', async () => {
  const { data, response } = await client.chat.completions
    .create({ model: 'auto', messages: user(BOTH), tools: [weatherTool, timeTool] })
    .withResponse();
  eq(response.headers.get('x-router-model'), 'good-mini', 'x-router-model');
  eq(data.choices.length, 1, 'choices.length');
  const ch = data.choices[0];
  eq(ch.finish_reason, 'tool_calls', 'finish_reason');
  eq(ch.message.role, 'assistant', 'role');
  eq(ch.message.content, null, 'content');
  expectCalls(ch.message, [['get_weather', WEATHER_ARGS], ['get_time', TIME_ARGS]], 'plain');
  assert(data.usage && data.usage.completion_tokens > 0, `usage: ${JSON.stringify(data.usage)}`);
});

test('tool calls: parallel_tool_calls false, forced tool_choice, tool_choice none', async () => {
  const one = await client.chat.completions.create({
    model: 'auto', messages: user(BOTH), tools: [weatherTool, timeTool], parallel_tool_calls: false,
  });
  expectCalls(one.choices[0].message, [['get_weather', WEATHER_ARGS]], 'parallel_tool_calls false');
  const forced = await client.chat.completions.create({
    model: 'auto', messages: user('What time is it?'), tools: [weatherTool, timeTool],
    tool_choice: { type: 'function', function: { name: 'get_time' } },
  });
  expectCalls(forced.choices[0].message, [['get_time', TIME_ARGS]], 'forced get_time');
  eq(forced.choices[0].finish_reason, 'tool_calls', 'forced finish_reason');
  const none = await client.chat.completions.create({
    model: 'auto', messages: user(BOTH), tools: [weatherTool, timeTool], tool_choice: 'none',
  });
  eq(none.choices[0].finish_reason, 'stop', 'tool_choice none finish_reason');
  eq(none.choices[0].message.tool_calls, undefined, 'tool_choice none tool_calls');
  eq(none.choices[0].message.content, `Simulated reply from sim-mini: ${BOTH}`, 'tool_choice none content');
});

test('tool calls, parse() with zodFunction tools: parsed_arguments', async () => {
  const strictTime = zodFunction({ name: 'get_time', parameters: z.object({ timezone: z.string(), hour24: z.boolean() }) });
  const r = await client.chat.completions.parse({ model: 'auto', messages: user(BOTH), tools: [weatherTool, strictTime] });
  const msg = r.choices[0].message;
  expectCalls(msg, [['get_weather', WEATHER_ARGS], ['get_time', { timezone: 'sim-timezone', hour24: true }]], 'parse');
  deepEq(msg.tool_calls[0].function.parsed_arguments, WEATHER_ARGS, 'get_weather parsed_arguments');
  deepEq(msg.tool_calls[1].function.parsed_arguments, { timezone: 'sim-timezone', hour24: true }, 'get_time parsed_arguments');
});

test('chat.completions.stream() with tools: fragments on the wire, final tool_calls', async () => {
  const stream = client.chat.completions.stream({
    model: 'auto', messages: user(BOTH), tools: [weatherTool, timeTool],
    stream_options: { include_usage: true },
  });
  const chunks = [];
  const argDeltas = { get_weather: 0, get_time: 0 };
  const done = [];
  stream.on('chunk', (c) => chunks.push(c));
  stream.on('tool_calls.function.arguments.delta', (e) => { argDeltas[e.name] = (argDeltas[e.name] ?? 0) + 1; });
  stream.on('tool_calls.function.arguments.done', (e) => done.push(e));
  const final = await stream.finalChatCompletion();
  const ch = final.choices[0];
  eq(ch.finish_reason, 'tool_calls', 'final finish_reason');
  expectCalls(ch.message, [['get_weather', WEATHER_ARGS], ['get_time', TIME_ARGS]], 'stream');
  deepEq(ch.message.tool_calls[0].function.parsed_arguments, WEATHER_ARGS, 'zod tool parsed_arguments');
  eq(done.length, 2, "number of 'arguments.done' events");
  deepEq(done.map((e) => e.name), ['get_weather', 'get_time'], "'arguments.done' names");
  deepEq(done[0].parsed_arguments, WEATHER_ARGS, "'arguments.done' parsed_arguments of the zod tool");
  assert(argDeltas.get_weather >= 2 && argDeltas.get_time >= 2,
    `arguments arrived in one piece, not streamed: ${JSON.stringify(argDeltas)}`);
  // Wire shape after the router: each call opens with index, id, type, name
  // and arguments ""; later fragments carry only index + arguments.
  const seen = new Set();
  let fragments = 0;
  for (const c of chunks) {
    for (const choice of c.choices) {
      for (const tc of choice.delta?.tool_calls ?? []) {
        assert(Number.isInteger(tc.index), `fragment without index: ${JSON.stringify(tc)}`);
        if (!seen.has(tc.index)) {
          seen.add(tc.index);
          assert(tc.id && tc.type === 'function' && tc.function?.name && tc.function.arguments === '',
            `first fragment of call ${tc.index}: ${JSON.stringify(tc)}`);
        } else {
          fragments++;
          deepEq(Object.keys(tc).sort(), ['function', 'index'], `later fragment keys ${JSON.stringify(tc)}`);
          deepEq(Object.keys(tc.function), ['arguments'], `later fragment function keys ${JSON.stringify(tc)}`);
        }
      }
    }
  }
  eq(seen.size, 2, 'tool-call indexes seen on the wire');
  assert(fragments >= 4, `only ${fragments} argument fragments`);
  const last = chunks[chunks.length - 1];
  eq(last.choices.length, 0, 'usage chunk choices');
  assert(last.usage && last.usage.completion_tokens > 0, `usage chunk: ${JSON.stringify(last.usage)}`);
  const roles = chunks.filter((c) => c.choices[0]?.delta?.role);
  eq(roles.length, 1, 'chunks carrying role');
});

async function runToolsCase(stream) {
  const calls = [];
  // its own prompt, so that the upstream request found below is this case's
  const prompt = `${BOTH} (runTools, stream ${stream})`;
  const runner = client.chat.completions.runTools({
    model: 'auto',
    messages: user(prompt),
    // streamed, usage comes only when asked for (the router strips the usage
    // chunk it requests for itself)
    ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}),
    tools: [
      {
        type: 'function',
        function: {
          name: 'get_weather',
          description: 'Weather forecast',
          parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
          parse: JSON.parse,
          function: (args) => { calls.push(['get_weather', args]); return `sunny in ${args.city}`; },
        },
      },
      {
        type: 'function',
        function: {
          name: 'get_time',
          description: 'Current time',
          parameters: timeParams,
          parse: JSON.parse,
          function: (args) => { calls.push(['get_time', args]); return `noon in ${args.timezone}`; },
        },
      },
    ],
  });
  const content = await runner.finalContent();
  deepEq(calls, [['get_weather', { city: 'sim-city' }], ['get_time', TIME_ARGS]], 'local functions called');
  eq(content, 'Simulated reply from sim-mini with 2 tool results: get_weather=sunny in sim-city; get_time=noon in sim-timezone',
    'final content');
  const rounds = runner.allChatCompletions();
  eq(rounds.length, 2, 'round trips');
  eq(rounds[0].choices[0].finish_reason, 'tool_calls', 'first round finish_reason');
  eq(rounds[1].choices[0].finish_reason, 'stop', 'second round finish_reason');
  // user, assistant with 2 tool calls, 2 tool results, final assistant
  deepEq(runner.messages.map((m) => m.role), ['user', 'assistant', 'tool', 'tool', 'assistant'], 'conversation roles');
  const usage = await runner.totalUsage();
  assert(usage.total_tokens > 0, `totalUsage: ${JSON.stringify(usage)}`);
  if (SIM_STATS_URL) {
    // the second upstream request carried the tool results, linked by id
    const reqs = await (await fetch(new URL('requests', SIM_STATS_URL))).json();
    const second = reqs
      .filter((r) => r.body?.messages?.[0]?.content === prompt && r.body.messages.some((m) => m.role === 'tool'))
      .pop();
    assert(second, 'no upstream request with tool messages');
    const tools = second.body.messages.filter((m) => m.role === 'tool');
    deepEq(tools.map((m) => m.tool_call_id), ['call_sim_1_0_0', 'call_sim_1_0_1'], 'upstream tool_call_ids');
    eq(second.body.stream === true, stream, 'upstream stream flag');
  }
}

test('runTools(): the SDK calls local functions and sends the results back', () => runToolsCase(false));
test('runTools() streamed: the same round trips over SSE', () => runToolsCase(true));

const answerSchema = z.object({
  city: z.string(),
  temperature: z.number(),
  count: z.number().int(),
  unit: z.enum(['celsius', 'fahrenheit']),
  tags: z.array(z.string()),
  raining: z.boolean(),
  nested: z.object({ note: z.string().nullable(), level: z.enum(['low', 'high']) }),
});
const ANSWER = {
  city: 'sim-city', temperature: 1.5, count: 42, unit: 'celsius', tags: ['sim-tags'], raining: true,
  nested: { note: 'sim-note', level: 'low' },
};

test('chat.completions.parse() with zodResponseFormat: message.parsed', async () => {
  const r = await client.chat.completions.parse({
    model: 'auto', messages: user('Weather as JSON'), response_format: zodResponseFormat(answerSchema, 'weather'),
  });
  const msg = r.choices[0].message;
  eq(r.choices[0].finish_reason, 'stop', 'finish_reason');
  deepEq(msg.parsed, ANSWER, 'message.parsed');
  deepEq(JSON.parse(msg.content), ANSWER, 'message.content');
  eq(msg.refusal, null, 'refusal');
});

test('chat.completions.stream() with zodResponseFormat: streamed JSON parses', async () => {
  const stream = client.chat.completions.stream({
    model: 'auto', messages: user('Weather as streamed JSON'), response_format: zodResponseFormat(answerSchema, 'weather'),
  });
  let deltas = 0;
  stream.on('content.delta', () => { deltas++; });
  const final = await stream.finalChatCompletion();
  deepEq(final.choices[0].message.parsed, ANSWER, 'message.parsed');
  assert(deltas >= 2, `JSON came in ${deltas} delta(s)`);
});

test('parse() with a richer zod schema: minItems, bounds, union, nullable, recursion, formats', async () => {
  const Item = z.object({ sku: z.string(), qty: z.number().int().min(1).max(9), price: z.number().gt(2) });
  const Shape = z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('circle'), r: z.number() }),
    z.object({ kind: z.literal('square'), side: z.number() }),
  ]);
  // recursive: zod emits a $ref into "definitions"
  const Node = z.object({ name: z.string(), get children() { return z.array(Node).max(0); } });
  const Rich = z.object({
    items: z.array(Item).min(2), shape: Shape, maybe: Item.nullable(), tree: Node,
    when: z.iso.datetime(), code: z.string().length(4),
  });
  const item = { sku: 'sim-sku', qty: 9, price: 2.5 };
  const r = await client.chat.completions.parse({
    model: 'auto', messages: user('Rich JSON'), response_format: zodResponseFormat(Rich, 'rich'),
  });
  deepEq(r.choices[0].message.parsed, {
    items: [item, item], shape: { kind: 'circle', r: 1.5 }, maybe: item,
    tree: { name: 'sim-name', children: [] }, when: '2024-01-02T03:04:05Z', code: 'sim-',
  }, 'message.parsed');
});

test('response_format json_object: a JSON object text', async () => {
  const r = await client.chat.completions.create({
    model: 'auto', messages: user('Answer in JSON'), response_format: { type: 'json_object' },
  });
  deepEq(JSON.parse(r.choices[0].message.content), { model: 'sim-mini', reply: 'Simulated reply from sim-mini: Answer in JSON' },
    'JSON content');
});

const choiceText = (i, prompt) =>
  i === 0 ? `Simulated reply from sim-mini: ${prompt}` : `Simulated reply from sim-mini (choice ${i}): ${prompt}`;

test('n=2, non-streamed: two choices, usage counts both', async () => {
  const prompt = 'Two answers please';
  const r = await client.chat.completions.create({ model: 'auto', messages: user(prompt), n: 2 });
  eq(r.choices.length, 2, 'choices.length');
  r.choices.forEach((c, i) => {
    eq(c.index, i, `choices[${i}].index`);
    eq(c.message.content, choiceText(i, prompt), `choices[${i}].content`);
    eq(c.finish_reason, 'stop', `choices[${i}].finish_reason`);
  });
  eq(r.usage.completion_tokens, words(choiceText(0, prompt)) + words(choiceText(1, prompt)), 'usage.completion_tokens');
});

test('n=2, streamed: interleaved choice indexes, a finish_reason each, usage counts both', async () => {
  const prompt = 'Two streamed answers';
  const stream = await client.chat.completions.create({
    model: 'auto', messages: user(prompt), n: 2, stream: true, stream_options: { include_usage: true },
  });
  const text = ['', ''];
  const finish = [[], []];
  const order = [];
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      assert(c.index === 0 || c.index === 1, `choice index ${c.index}`);
      order.push(c.index);
      text[c.index] += c.delta?.content ?? '';
      if (c.finish_reason) finish[c.index].push(c.finish_reason);
    }
  }
  eq(text[0], choiceText(0, prompt), 'choice 0 text');
  eq(text[1], choiceText(1, prompt), 'choice 1 text');
  deepEq(finish, [['stop'], ['stop']], 'finish_reasons per choice');
  assert(order.indexOf(1) < order.lastIndexOf(0), `choices not interleaved: ${order.join('')}`);
  assert(usage, 'no usage chunk');
  eq(usage.completion_tokens, words(text[0]) + words(text[1]), 'usage.completion_tokens');
  // the router prices both choices (good-mini: $0.15 / $0.60 per million tokens)
  const cost = (usage.prompt_tokens * 0.15 + usage.completion_tokens * 0.6) / 1e6;
  assert(typeof usage.cost === 'number' && Math.abs(usage.cost - cost) < 1e-12, `usage.cost ${usage.cost}, expected ${cost}`);
});

test('n=2, stream() helper with tools: both choices carry the calls', async () => {
  const final = await client.chat.completions
    .stream({ model: 'auto', messages: user(BOTH), tools: [weatherTool, timeTool], n: 2 })
    .finalChatCompletion();
  eq(final.choices.length, 2, 'choices.length');
  final.choices.forEach((c, i) => {
    eq(c.finish_reason, 'tool_calls', `choices[${i}].finish_reason`);
    const ids = c.message.tool_calls.map((t) => t.id);
    deepEq(ids, [`call_sim_1_${i}_0`, `call_sim_1_${i}_1`], `choices[${i}] tool call ids`);
    deepEq(c.message.tool_calls.map((t) => JSON.parse(t.function.arguments)), [WEATHER_ARGS, TIME_ARGS],
      `choices[${i}] arguments`);
  });
});

test('bad tools / n: the upstream 400 reaches the SDK as BadRequestError', async () => {
  for (const [what, body, param] of [
    ['n=0', { n: 0 }, 'n'],
    ['tool without a name', { tools: [{ type: 'function', function: {} }] }, 'tools[0].function.name'],
    ['forced unknown tool', { tools: [timeTool], tool_choice: { type: 'function', function: { name: 'nope' } } }, 'tool_choice'],
  ]) {
    let err = null;
    try {
      await client.chat.completions.create({ model: 'auto', messages: user('x'), ...body });
    } catch (e) {
      err = e;
    }
    assert(err instanceof OpenAI.BadRequestError, `${what}: expected BadRequestError, got ${err ? describeError(err) : 'success'}`);
    eq(err.param, param, `${what}: error.param`);
  }
});

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
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
