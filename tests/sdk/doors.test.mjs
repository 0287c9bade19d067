// The two new front doors through the official SDKs (issue 13 §4):
//   POST /v1/responses — openai's responses.create / responses.stream /
//     responses.parse, the Vercel AI SDK's default createOpenAI({baseURL})
//     (model) (the Responses API) with generateText and streamText, and
//     @openai/agents with its defaults (the Responses API, a function tool);
//   POST /v1/messages — @anthropic-ai/sdk's messages.create / messages.stream
//     with tools, countTokens, over an OpenAI-type and an Anthropic upstream.
// Mixed chains (Claude first failing over to an OpenAI-type model, and the
// reverse) behind both doors, plain and streamed; errors in each door's shape.
//
// Environment: LLMROUTER_URL, LLMROUTER_URL_NOV1, SIM_STATS_URL, given by
// tests/with_daemon.py with tests/sdk/llmrouter-sdk.yaml (tests/sdk/run.sh).
// The simulated provider answers deterministically (tests/sim/README.md):
// OpenAI-type models "Simulated reply from sim-mini: <first 60 chars of the
// last user message>", calling the tools named in it (ids call_sim_...);
// after tool results "Simulated reply from sim-mini with N tool result(s):
// name=content; ...". Claude (claude-sim) the same with "Calling <names>."
// before its calls, ids toolu_sim_<messages>_<k>, and tool results echoed by
// tool_use_id.
//
// Output: "ok - name" / "not ok - name: reason" lines, then one
// "N passed, M failed" line; exit 1 on any failure.

import OpenAI from 'openai';
import { zodTextFormat } from 'openai/helpers/zod';
import Anthropic from '@anthropic-ai/sdk';
import { generateText, streamText, tool as aiTool, stepCountIs } from 'ai';
import { createOpenAI } from '@ai-sdk/openai';
import { Agent, run as agentRun, tool as agentTool, setDefaultOpenAIClient, setTracingDisabled } from '@openai/agents';
import { z } from 'zod';
import { assert, eq, deepEq, describeError, env, makeSuite, simReset, simRequestsTo } from './harness.mjs';

const { BASE, NOV1, SIM } = env();
const { test, run } = makeSuite();

// Every URL an SDK asked for, so a test can check which door it used.
const urls = [];
const bodies = []; // request bodies sent to the router, as strings
const recordingFetch = (input, init) => {
  urls.push(String(input instanceof Request ? input.url : input));
  bodies.push(typeof init?.body === 'string' ? init.body : '');
  return fetch(input, init);
};
const lastPath = () => new URL(urls[urls.length - 1]).pathname;

const openai = new OpenAI({ baseURL: BASE, apiKey: 'client-key-doors', maxRetries: 0, timeout: 20000, fetch: recordingFetch });
// The Anthropic SDK appends /v1/messages itself: its base URL has no /v1.
const anthropic = new Anthropic({ baseURL: NOV1, apiKey: 'client-key-doors', maxRetries: 0, timeout: 20000, fetch: recordingFetch });

const BOTH = 'Please call get_weather and get_time for me.';
const WEATHER = 'Please call get_weather for me.';
const simText = (model, text) => `Simulated reply from ${model}: ${text.slice(0, 60)}`;

const weatherParams = {
  type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false,
};
const timeParams = {
  type: 'object', properties: { timezone: { type: 'string' } }, required: ['timezone'], additionalProperties: false,
};
const WEATHER_ARGS = { city: 'sim-city' };
const TIME_ARGS = { timezone: 'sim-timezone' };
// Responses API function tools (flat, not nested under "function")
const respTools = [
  { type: 'function', name: 'get_weather', description: 'Weather forecast', parameters: weatherParams, strict: true },
  { type: 'function', name: 'get_time', description: 'Current time', parameters: timeParams, strict: true },
];
// Messages API tools
const antTools = [
  { name: 'get_weather', description: 'Weather forecast', input_schema: weatherParams },
  { name: 'get_time', description: 'Current time', input_schema: timeParams },
];

async function expectError(promise, what) {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  throw new Error(`${what}: expected an error, got success`);
}

function functionCalls(resp, what) {
  const calls = (resp.output ?? []).filter((i) => i.type === 'function_call');
  for (const c of calls) {
    assert(typeof c.call_id === 'string' && c.call_id.length > 0, `${what}: function_call without call_id: ${JSON.stringify(c)}`);
  }
  return calls;
}

// ======================================================= /v1/responses: openai

test('responses.create: plain text, instructions, usage, router headers', async () => {
  await simReset(SIM);
  const prompt = 'Tell me about the sea';
  const { data, response } = await openai.responses
    .create({ model: 'standard', input: prompt, instructions: 'Be brief.' })
    .withResponse();
  eq(lastPath(), '/v1/responses', 'path the SDK used');
  eq(data.object, 'response', 'object');
  eq(data.status, 'completed', 'status');
  eq(data.output_text, simText('sim-mini', prompt), 'output_text');
  const msg = data.output.find((i) => i.type === 'message');
  assert(msg, `no message item in output: ${JSON.stringify(data.output)}`);
  eq(msg.role, 'assistant', 'message role');
  eq(msg.content[0].type, 'output_text', 'content type');
  assert(data.usage?.input_tokens > 0 && data.usage.output_tokens > 0, `usage ${JSON.stringify(data.usage)}`);
  eq(data.usage.total_tokens, data.usage.input_tokens + data.usage.output_tokens, 'usage.total_tokens');
  eq(response.headers.get('x-router-model'), 'good-mini', 'x-router-model');
  assert(response.headers.get('x-router-cost-usd') !== null, 'x-router-cost-usd header missing');
  const up = await simRequestsTo(SIM, '/chat/completions');
  eq(up.length, 1, 'upstream chat requests');
  const sys = up[0].body.messages.find((m) => m.role === 'system' || m.role === 'developer');
  assert(sys && JSON.stringify(sys.content).includes('Be brief.'), `instructions not sent upstream: ${JSON.stringify(up[0].body.messages)}`);
});

test('responses.create with function tools: function_call items, then function_call_output round trip', async () => {
  const first = await openai.responses.create({ model: 'standard', input: BOTH, tools: respTools });
  const calls = functionCalls(first, 'first turn');
  deepEq(calls.map((c) => c.name), ['get_weather', 'get_time'], 'called tools');
  deepEq(calls.map((c) => JSON.parse(c.arguments)), [WEATHER_ARGS, TIME_ARGS], 'arguments');
  eq(first.status, 'completed', 'status');
  // stateless: the client sends the whole conversation back
  const second = await openai.responses.create({
    model: 'standard',
    tools: respTools,
    input: [
      { role: 'user', content: BOTH },
      ...first.output,
      { type: 'function_call_output', call_id: calls[0].call_id, output: 'sunny' },
      { type: 'function_call_output', call_id: calls[1].call_id, output: 'noon' },
    ],
  });
  eq(second.output_text, 'Simulated reply from sim-mini with 2 tool results: get_weather=sunny; get_time=noon', 'final text');
});

test('responses.stream: the event sequence and finalResponse()', async () => {
  const prompt = 'Stream me a story';
  const stream = openai.responses.stream({ model: 'standard', input: prompt });
  const types = [];
  let deltas = '';
  stream.on('event', (e) => types.push(e.type));
  stream.on('response.output_text.delta', (e) => { deltas += e.delta; });
  const final = await stream.finalResponse();
  eq(final.output_text, simText('sim-mini', prompt), 'final output_text');
  eq(deltas, final.output_text, 'deltas add up to the text');
  eq(types[0], 'response.created', 'first event');
  eq(types[types.length - 1], 'response.completed', 'last event');
  for (const t of ['response.output_item.added', 'response.content_part.added', 'response.output_text.done',
    'response.output_item.done']) {
    assert(types.includes(t), `no ${t} event: ${types.join(' ')}`);
  }
  assert(types.filter((t) => t === 'response.output_text.delta').length >= 2, `text not streamed: ${types.join(' ')}`);
  assert(final.usage?.output_tokens > 0, `usage in response.completed: ${JSON.stringify(final.usage)}`);
});

test('responses.stream with tools: function_call_arguments deltas, final function_call items', async () => {
  const stream = openai.responses.stream({ model: 'standard', input: BOTH, tools: respTools });
  let argDeltas = 0;
  const argsDone = [];
  stream.on('response.function_call_arguments.delta', () => { argDeltas++; });
  stream.on('response.function_call_arguments.done', (e) => argsDone.push(e.arguments));
  const final = await stream.finalResponse();
  const calls = functionCalls(final, 'stream');
  deepEq(calls.map((c) => c.name), ['get_weather', 'get_time'], 'called tools');
  deepEq(calls.map((c) => JSON.parse(c.arguments)), [WEATHER_ARGS, TIME_ARGS], 'arguments');
  deepEq(argsDone.map((a) => JSON.parse(a)), [WEATHER_ARGS, TIME_ARGS], "'arguments.done' events");
  assert(argDeltas >= 4, `arguments not streamed: ${argDeltas} delta(s)`);
});

test('responses.parse with zodTextFormat: text.format json_schema → output_parsed', async () => {
  const Answer = z.object({ city: z.string(), days: z.number().int(), unit: z.enum(['celsius', 'fahrenheit']) });
  const r = await openai.responses.parse({
    model: 'standard', input: 'Weather as JSON', text: { format: zodTextFormat(Answer, 'weather') },
  });
  deepEq(r.output_parsed, { city: 'sim-city', days: 42, unit: 'celsius' }, 'output_parsed');
});

test('responses over Claude: text plus tool calls, Anthropic ids kept as call_id, stream too', async () => {
  await simReset(SIM);
  const { data, response } = await openai.responses
    .create({ model: 't-claude', input: BOTH, tools: respTools, max_output_tokens: 300 })
    .withResponse();
  eq(response.headers.get('x-router-provider'), 'ant', 'x-router-provider');
  eq(data.output_text, 'Calling get_weather, get_time.', 'text before the calls');
  const calls = functionCalls(data, 'claude');
  deepEq(calls.map((c) => [c.call_id, c.name, JSON.parse(c.arguments)]),
    [['toolu_sim_1_0', 'get_weather', WEATHER_ARGS], ['toolu_sim_1_1', 'get_time', TIME_ARGS]], 'calls');
  const up = await simRequestsTo(SIM, '/messages');
  eq(up.length, 1, 'upstream /messages requests');
  eq(up[0].body.max_tokens, 300, 'max_output_tokens → max_tokens');
  const final = await openai.responses.stream({ model: 't-claude', input: BOTH, tools: respTools }).finalResponse();
  deepEq(functionCalls(final, 'claude stream').map((c) => c.call_id), ['toolu_sim_1_0', 'toolu_sim_1_1'], 'streamed call ids');
  eq(final.output_text, 'Calling get_weather, get_time.', 'streamed text');
});

for (const stream of [false, true]) {
  const how = stream ? 'streamed' : 'plain';
  test(`responses, mixed chains (${how}): Claude 529 → OpenAI-type, OpenAI-type 500 → Claude`, async () => {
    const prompt = `Failover through the Responses door (${how})`;
    const ask = async (model) => {
      if (!stream) {
        const { data, response } = await openai.responses.create({ model, input: prompt }).withResponse();
        return [data, response.headers.get('x-router-model')];
      }
      const s = openai.responses.stream({ model, input: prompt });
      return [await s.finalResponse(), null];
    };
    const [a, aModel] = await ask('a529-oai');
    eq(a.output_text, simText('sim-mini', prompt), 'a529-oai text');
    if (!stream) eq(aModel, 'good-mini', 'a529-oai x-router-model');
    const [b, bModel] = await ask('oai-ant');
    eq(b.output_text, simText('claude-sim', prompt), 'oai-ant text');
    if (!stream) eq(bModel, 'claude', 'oai-ant x-router-model');
  });
}

test('responses passed through to a responses_api provider: create and stream, the provider\'s ids kept', async () => {
  await simReset(SIM);
  const prompt = 'Native Responses pass-through';
  const { data, response } = await openai.responses.create({ model: 't-native', input: prompt }).withResponse();
  eq(response.headers.get('x-router-model'), 'native-mini', 'x-router-model');
  eq(data.output_text, simText('sim-native', prompt), 'output_text');
  assert(/^resp_sim_\d+$/.test(data.id), `the provider's response id: ${data.id}`);
  const up = await simRequestsTo(SIM, '/responses');
  eq(up.length, 1, 'upstream /responses requests');
  eq(up[0].body.input, prompt, 'input passed as is');
  eq(up[0].body.model, 'sim-native', 'upstream model');
  const stream = openai.responses.stream({ model: 't-native', input: prompt });
  let deltas = '';
  stream.on('response.output_text.delta', (e) => { deltas += e.delta; });
  const final = await stream.finalResponse();
  eq(final.output_text, simText('sim-native', prompt), 'streamed output_text');
  eq(deltas, final.output_text, 'deltas add up');
  const g = await generateText({ model: aiOpenAI('t-native'), prompt, maxRetries: 0 });
  eq(g.text, simText('sim-native', prompt), 'Vercel AI SDK generateText');
});

for (const stream of [false, true]) {
  const how = stream ? 'streamed' : 'plain';
  test(`responses, native pass-through in mixed chains (${how}): native 500 → translated, Claude 529 → native`, async () => {
    const prompt = `Native failover (${how})`;
    const ask = async (model) => (stream
      ? openai.responses.stream({ model, input: prompt }).finalResponse()
      : openai.responses.create({ model, input: prompt }));
    eq((await ask('nat-oai')).output_text, simText('sim-mini', prompt), 'nat-oai text');
    eq((await ask('ant-nat')).output_text, simText('sim-native', prompt), 'ant-nat text');
  });
}

test('responses errors: store true, previous_response_id → 400 naming the field; unknown model; OpenAI shape', async () => {
  for (const [what, body, param] of [
    ['store: true', { store: true }, 'store'],
    ['previous_response_id', { previous_response_id: 'resp_123' }, 'previous_response_id'],
  ]) {
    const err = await expectError(openai.responses.create({ model: 'standard', input: 'x', ...body }), what);
    assert(err instanceof OpenAI.BadRequestError, `${what}: expected BadRequestError, got ${describeError(err)}`);
    eq(err.param, param, `${what}: error.param`);
    assert(/not supported|stateless/i.test(err.message), `${what}: message does not say what is unsupported: ${err.message}`);
  }
  const err = await expectError(openai.responses.create({ model: 'no-such-model', input: 'x' }), 'unknown model');
  assert(err instanceof OpenAI.APIError && err.status >= 400 && err.status < 500, `unknown model: ${describeError(err)}`);
  for (const k of ['message', 'type', 'param', 'code']) {
    assert(k in (err.error ?? {}), `unknown model: OpenAI error shape lacks ${k}: ${JSON.stringify(err.error)}`);
  }
});

// ============================================= /v1/responses: Vercel AI SDK

const aiOpenAI = createOpenAI({ baseURL: BASE, apiKey: 'client-key-vercel', fetch: recordingFetch });

test('Vercel AI SDK generateText with the default openai(model): the Responses door', async () => {
  const prompt = 'What is the capital of France?';
  const r = await generateText({ model: aiOpenAI('standard'), prompt, maxRetries: 0 });
  eq(lastPath(), '/v1/responses', 'path the AI SDK used');
  eq(r.text, simText('sim-mini', prompt), 'text');
  eq(r.finishReason, 'stop', 'finishReason');
  assert(r.usage.inputTokens > 0 && r.usage.outputTokens > 0, `usage ${JSON.stringify(r.usage)}`);
  eq(r.response.modelId, 'sim-mini', 'response.modelId');
});

test('Vercel AI SDK streamText: textStream, finishReason, usage', async () => {
  const prompt = 'Stream the capital of Italy';
  const result = streamText({ model: aiOpenAI('standard'), prompt, maxRetries: 0, onError: () => {} });
  let text = '';
  let parts = 0;
  for await (const t of result.textStream) {
    text += t;
    parts++;
  }
  eq(lastPath(), '/v1/responses', 'path the AI SDK used');
  eq(text, simText('sim-mini', prompt), 'streamed text');
  assert(parts >= 2, `text came in ${parts} part(s)`);
  eq(await result.finishReason, 'stop', 'finishReason');
  const usage = await result.usage;
  assert(usage.inputTokens > 0 && usage.outputTokens > 0, `usage ${JSON.stringify(usage)}`);
});

test('Vercel AI SDK generateText over Claude', async () => {
  const prompt = 'Claude through the AI SDK';
  const r = await generateText({ model: aiOpenAI('t-claude'), prompt, maxRetries: 0 });
  eq(r.text, simText('claude-sim', prompt), 'text');
  eq(r.finishReason, 'stop', 'finishReason');
});

async function vercelToolLoop(model, providerOptions) {
  const calls = [];
  const r = await generateText({
    model: aiOpenAI(model),
    prompt: WEATHER,
    maxRetries: 0,
    stopWhen: stepCountIs(3),
    ...(providerOptions ? { providerOptions } : {}),
    tools: {
      get_weather: aiTool({
        description: 'Weather forecast',
        inputSchema: z.object({ city: z.string() }),
        execute: async ({ city }) => { calls.push(city); return `sunny in ${city}`; },
      }),
    },
  });
  deepEq(calls, ['sim-city'], 'tool executed with the arguments');
  eq(r.steps.length, 2, 'steps');
  eq(r.steps[0].finishReason, 'tool-calls', 'first step finishReason');
  return r;
}

test('Vercel AI SDK generateText with a tool, defaults: two steps through the stateless door', async () => {
  const r = await vercelToolLoop('standard');
  assert(r.text.startsWith('Simulated reply from sim-mini with 1 tool result: get_weather='), `final text ${r.text}`);
  assert(r.text.includes('sunny in sim-city'), `tool output not sent back: ${r.text}`);
});

test('Vercel AI SDK generateText with a tool over Claude (store: false)', async () => {
  const r = await vercelToolLoop('t-claude', { openai: { store: false } });
  assert(r.text.startsWith('Simulated reply from claude-sim with 1 tool result(s): toolu_sim_1_0='), `final text ${r.text}`);
  assert(r.text.includes('sunny in sim-city'), `tool output not sent back: ${r.text}`);
});

// A chat application's second turn: the history is the first call's
// response.messages. The AI SDK converts the assistant text it got back
// (providerOptions.openai.itemId = the router's output item id) into an
// item_reference unless providerOptions.openai.store is false; the router
// resolves references to the items it answered with (http/door_items.c).
async function vercelSecondTurn(providerOptions) {
  const opts = providerOptions ? { providerOptions } : {};
  const first = await generateText({ model: aiOpenAI('standard'), prompt: 'First turn', maxRetries: 0, ...opts });
  bodies.length = 0;
  const r = await generateText({
    model: aiOpenAI('standard'), maxRetries: 0, ...opts,
    messages: [{ role: 'user', content: 'First turn' }, ...first.response.messages, { role: 'user', content: 'Second turn' }],
  });
  eq(r.text, simText('sim-mini', 'Second turn'), 'second turn text');
  await upstreamSawHistory(simText('sim-mini', 'First turn'));
  return bodies.join('\n');
}

// The upstream request of the second turn carries the first answer as an
// assistant message: the history reached the model (a dropped reference
// would give the same reply text, so the reply alone proves nothing).
async function upstreamSawHistory(firstAnswer) {
  const up = await simRequestsTo(SIM, '/chat/completions');
  const last = up[up.length - 1]?.body;
  const msgs = last?.messages ?? [];
  assert(msgs.some((m) => m.role === 'assistant' && JSON.stringify(m.content).includes(firstAnswer)),
    `the second turn's upstream request has the first answer: ${JSON.stringify(msgs).slice(0, 400)}`);
}

test('Vercel AI SDK second turn with response.messages, store: false', async () => {
  const sent = await vercelSecondTurn({ openai: { store: false } });
  assert(!/item_reference/.test(sent), 'with store: false the SDK sends the items themselves');
});
// With the defaults the SDK sends an item_reference to the router's own
// output item, which the router resolves.
test('Vercel AI SDK second turn with response.messages, defaults: the router resolves its item_reference', async () => {
  const sent = await vercelSecondTurn();
  assert(/"item_reference"/.test(sent), `the SDK sent an item_reference (so this tests the resolution): ${sent.slice(0, 300)}`);
});
// The same after a streamed first turn: the items come from the stream's
// response.completed event.
test('Vercel AI SDK second turn after streamText, defaults: the reference resolves', async () => {
  const first = streamText({ model: aiOpenAI('standard'), prompt: 'Streamed first turn', maxRetries: 0 });
  let text = '';
  for await (const part of first.textStream) text += part;
  eq(text, simText('sim-mini', 'Streamed first turn'), 'first turn text');
  const history = (await first.response).messages;
  bodies.length = 0;
  const r = await generateText({
    model: aiOpenAI('standard'), maxRetries: 0,
    messages: [{ role: 'user', content: 'Streamed first turn' }, ...history, { role: 'user', content: 'Second turn' }],
  });
  eq(r.text, simText('sim-mini', 'Second turn'), 'second turn text');
  await upstreamSawHistory(simText('sim-mini', 'Streamed first turn'));
  assert(/"item_reference"/.test(bodies.join('\n')), 'the SDK sent an item_reference');
});
// A reference to an item the router never minted is still refused, with
// a message that says why.
test('Responses door: an unknown item_reference gets a 400 naming it', async () => {
  const res = await fetch(`${BASE}/responses`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer x' },
    body: JSON.stringify({ model: 'standard', input: [{ type: 'item_reference', id: 'msg_never_minted_0' }, { role: 'user', content: 'hi' }] }),
  });
  eq(res.status, 400, 'status');
  const body = await res.json();
  eq(body.error?.param, 'input', 'error.param');
  assert(/item_reference/.test(body.error.message) && /does not have/.test(body.error.message),
    `the message says what is refused and why: ${body.error.message}`);
});

// ============================================ /v1/responses: @openai/agents

// The agents SDK's documented way to use another OpenAI-compatible endpoint:
// its default client. Tracing is off: it would export to OpenAI's servers.
setDefaultOpenAIClient(new OpenAI({ baseURL: BASE, apiKey: 'client-key-agents', maxRetries: 0, timeout: 20000, fetch: recordingFetch }));
setTracingDisabled(true);

function weatherAgent(calls) {
  return new Agent({
    name: 'Weather agent',
    instructions: 'Answer weather questions with the get_weather tool.',
    // no model: the SDK's default (gpt-5.4-mini with its GPT-5 settings),
    // routed like "auto" through routing.routable_models
    tools: [
      agentTool({
        name: 'get_weather',
        description: 'Weather forecast for a city',
        parameters: z.object({ city: z.string() }),
        execute: async ({ city }) => { calls.push(city); return `sunny in ${city}`; },
      }),
    ],
  });
}

test('@openai/agents run() with defaults and one function tool', async () => {
  await simReset(SIM);
  const calls = [];
  urls.length = 0;
  const result = await agentRun(weatherAgent(calls), WEATHER);
  deepEq(calls, ['sim-city'], 'tool executed');
  eq(result.finalOutput, 'Simulated reply from sim-mini with 1 tool result: get_weather=sunny in sim-city', 'finalOutput');
  assert(urls.length >= 2 && urls.every((u) => new URL(u).pathname === '/v1/responses'), `paths used: ${urls.join(' ')}`);
  const up = await simRequestsTo(SIM, '/chat/completions');
  eq(up.length, 2, 'upstream requests (tool call, then the answer)');
  const sys = up[0].body.messages.find((m) => m.role === 'system' || m.role === 'developer');
  assert(sys && JSON.stringify(sys.content).includes('get_weather tool'), `instructions upstream: ${JSON.stringify(up[0].body.messages)}`);
});

test('@openai/agents run() streamed: text stream and finalOutput', async () => {
  const calls = [];
  const result = await agentRun(weatherAgent(calls), WEATHER, { stream: true });
  let text = '';
  for await (const t of result.toTextStream()) text += t;
  await result.completed;
  deepEq(calls, ['sim-city'], 'tool executed');
  const want = 'Simulated reply from sim-mini with 1 tool result: get_weather=sunny in sim-city';
  eq(result.finalOutput, want, 'finalOutput');
  eq(text, want, 'streamed text');
});

test('@openai/agents second turn from result.history', async () => {
  const calls = [];
  const agent = weatherAgent(calls);
  const first = await agentRun(agent, WEATHER);
  const second = await agentRun(agent, [...first.history, { role: 'user', content: 'Thanks, and tomorrow?' }]);
  eq(second.finalOutput, simText('sim-mini', 'Thanks, and tomorrow?'), 'second finalOutput');
  deepEq(calls, ['sim-city'], 'tool executed once');
});

// ======================================== /v1/messages: @anthropic-ai/sdk

function toolUses(msg) {
  return msg.content.filter((b) => b.type === 'tool_use');
}

test('messages.create over an OpenAI-type model: text, usage, router headers', async () => {
  const prompt = 'Hello from the Anthropic SDK';
  const { data, response } = await anthropic.messages
    .create({ model: 'standard', max_tokens: 256, system: 'Be brief.', messages: [{ role: 'user', content: prompt }] })
    .withResponse();
  eq(lastPath(), '/v1/messages', 'path the SDK used');
  eq(data.type, 'message', 'type');
  eq(data.role, 'assistant', 'role');
  deepEq(data.content.map((b) => [b.type, b.text]), [['text', simText('sim-mini', prompt)]], 'content');
  eq(data.stop_reason, 'end_turn', 'stop_reason');
  assert(data.usage.input_tokens > 0 && data.usage.output_tokens > 0, `usage ${JSON.stringify(data.usage)}`);
  eq(response.headers.get('x-router-model'), 'good-mini', 'x-router-model');
  assert(response.headers.get('x-router-cost-usd') !== null, 'x-router-cost-usd header missing');
});

test('messages.create with tools over an OpenAI-type model: tool_use blocks, then tool_result round trip', async () => {
  const first = await anthropic.messages.create({
    model: 'standard', max_tokens: 256, tools: antTools, messages: [{ role: 'user', content: BOTH }],
  });
  eq(first.stop_reason, 'tool_use', 'stop_reason');
  const uses = toolUses(first);
  deepEq(uses.map((b) => [b.name, b.input]), [['get_weather', WEATHER_ARGS], ['get_time', TIME_ARGS]], 'tool_use blocks');
  assert(uses.every((b) => typeof b.id === 'string' && b.id.length > 0), `tool_use ids: ${JSON.stringify(uses)}`);
  const second = await anthropic.messages.create({
    model: 'standard', max_tokens: 256, tools: antTools,
    messages: [
      { role: 'user', content: BOTH },
      { role: 'assistant', content: first.content },
      { role: 'user', content: uses.map((b, i) => ({ type: 'tool_result', tool_use_id: b.id, content: ['sunny', 'noon'][i] })) },
    ],
  });
  eq(second.content.find((b) => b.type === 'text')?.text,
    'Simulated reply from sim-mini with 2 tool results: get_weather=sunny; get_time=noon', 'final text');
  eq(second.stop_reason, 'end_turn', 'final stop_reason');
});

test('messages.stream with tools over an OpenAI-type model: inputJson events, finalMessage', async () => {
  const stream = anthropic.messages.stream({
    model: 'standard', max_tokens: 256, tools: antTools, messages: [{ role: 'user', content: BOTH }],
  });
  const events = [];
  let jsonParts = 0;
  stream.on('streamEvent', (e) => events.push(e.type));
  stream.on('inputJson', () => { jsonParts++; });
  const final = await stream.finalMessage();
  eq(final.stop_reason, 'tool_use', 'stop_reason');
  deepEq(toolUses(final).map((b) => [b.name, b.input]), [['get_weather', WEATHER_ARGS], ['get_time', TIME_ARGS]], 'tool_use blocks');
  assert(jsonParts >= 4, `input JSON not streamed: ${jsonParts} part(s)`);
  eq(events[0], 'message_start', 'first event');
  eq(events[events.length - 1], 'message_stop', 'last event');
  assert(events.includes('message_delta'), `no message_delta: ${events.join(' ')}`);
  assert(final.usage.output_tokens > 0, `usage ${JSON.stringify(final.usage)}`);
});

test('messages.stream plain text over an OpenAI-type model: text events', async () => {
  const prompt = 'Stream through the Messages door';
  const stream = anthropic.messages.stream({ model: 'standard', max_tokens: 256, messages: [{ role: 'user', content: prompt }] });
  let text = '';
  let parts = 0;
  stream.on('text', (t) => { text += t; parts++; });
  const final = await stream.finalMessage();
  eq(text, simText('sim-mini', prompt), 'streamed text');
  assert(parts >= 2, `text came in ${parts} part(s)`);
  eq(final.content[0].text, text, 'finalMessage text');
  eq(final.stop_reason, 'end_turn', 'stop_reason');
});

test('messages.create with tools over Claude: no translation loss (body, ids, cache_control)', async () => {
  await simReset(SIM);
  const tools = [antTools[0], { ...antTools[1], cache_control: { type: 'ephemeral' } }];
  const messages = [{ role: 'user', content: [{ type: 'text', text: BOTH, cache_control: { type: 'ephemeral' } }] }];
  const { data, response } = await anthropic.messages
    .create({ model: 't-claude', max_tokens: 256, tools, messages })
    .withResponse();
  eq(response.headers.get('x-router-provider'), 'ant', 'x-router-provider');
  eq(data.content[0].type, 'text', 'first block');
  eq(data.content[0].text, 'Calling get_weather, get_time.', 'text block');
  deepEq(toolUses(data).map((b) => [b.id, b.name, b.input]),
    [['toolu_sim_1_0', 'get_weather', WEATHER_ARGS], ['toolu_sim_1_1', 'get_time', TIME_ARGS]], 'tool_use blocks');
  eq(data.usage.cache_creation_input_tokens, 10, 'usage.cache_creation_input_tokens');
  eq(data.usage.cache_read_input_tokens, 50, 'usage.cache_read_input_tokens');
  const up = await simRequestsTo(SIM, '/messages');
  eq(up.length, 1, 'upstream /messages requests');
  deepEq(up[0].body.tools, tools, 'tools upstream, cache_control included');
  deepEq(up[0].body.messages, messages, 'messages upstream, cache_control included');
  eq(up[0].body.model, 'claude-sim', 'upstream model');
});

test('messages.stream with tools over Claude: text plus tools, finalMessage', async () => {
  const final = await anthropic.messages.stream({
    model: 't-claude', max_tokens: 256, tools: antTools, messages: [{ role: 'user', content: BOTH }],
  }).finalMessage();
  deepEq(final.content.map((b) => b.type), ['text', 'tool_use', 'tool_use'], 'block types');
  eq(final.content[0].text, 'Calling get_weather, get_time.', 'text');
  deepEq(toolUses(final).map((b) => [b.id, b.input]), [['toolu_sim_1_0', WEATHER_ARGS], ['toolu_sim_1_1', TIME_ARGS]], 'tool_use');
  eq(final.stop_reason, 'tool_use', 'stop_reason');
});

test('messages over Claude with thinking: the signature survives the round trip byte for byte', async () => {
  const prompt = 'Think about the sea';
  const first = await anthropic.messages.create({
    model: 't-claude', max_tokens: 2048, thinking: { type: 'enabled', budget_tokens: 1024 },
    messages: [{ role: 'user', content: prompt }],
  });
  const th = first.content[0];
  eq(th.type, 'thinking', 'first block');
  assert(typeof th.signature === 'string' && th.signature.startsWith('Sim'), `signature ${th.signature}`);
  await simReset(SIM);
  // the simulator refuses (400) a thinking block whose signature it did not give
  const second = await anthropic.messages.create({
    model: 't-claude', max_tokens: 2048, thinking: { type: 'enabled', budget_tokens: 1024 },
    messages: [
      { role: 'user', content: prompt },
      { role: 'assistant', content: first.content },
      { role: 'user', content: 'And now?' },
    ],
  });
  eq(second.content.find((b) => b.type === 'text')?.text, simText('claude-sim', 'And now?'), 'second answer');
  const up = await simRequestsTo(SIM, '/messages');
  eq(up[up.length - 1].body.messages[1].content[0].signature, th.signature, 'signature upstream');
  // streamed: the signature arrives as a signature_delta
  const streamed = await anthropic.messages.stream({
    model: 't-claude', max_tokens: 2048, thinking: { type: 'enabled', budget_tokens: 1024 },
    messages: [{ role: 'user', content: prompt }],
  }).finalMessage();
  eq(streamed.content[0].type, 'thinking', 'streamed first block');
  eq(streamed.content[0].signature, th.signature, 'streamed signature');
  eq(streamed.content[0].thinking, th.thinking, 'streamed thinking');
});

test('messages.stream over Claude: redacted_thinking and server-tool blocks arrive as the provider sent them', async () => {
  const want = ['redacted_thinking', 'server_tool_use', 'web_search_tool_result', 'text'];
  const plain = await anthropic.messages.create({
    model: 't-claudex', max_tokens: 256, messages: [{ role: 'user', content: 'Search the sea' }],
  });
  deepEq(plain.content.map((b) => b.type), want, 'plain block types');
  const streamed = await anthropic.messages.stream({
    model: 't-claudex', max_tokens: 256, messages: [{ role: 'user', content: 'Search the sea' }],
  }).finalMessage();
  deepEq(streamed.content.map((b) => b.type), want, 'streamed block types');
  deepEq(streamed.content.slice(0, 3), plain.content.slice(0, 3), 'the same blocks, streamed or not');
  deepEq(streamed.content[1].input, { query: 'sim query' }, 'server tool input from its json deltas');
  eq(streamed.content[3].text, plain.content[3].text, 'text');
});

test('messages.countTokens: an input_tokens count', async () => {
  for (const model of ['standard', 't-claude']) {
    const r = await anthropic.messages.countTokens({ model, messages: [{ role: 'user', content: 'Count these tokens please' }] });
    assert(Number.isInteger(r.input_tokens) && r.input_tokens > 0, `${model}: ${JSON.stringify(r)}`);
  }
});

for (const stream of [false, true]) {
  const how = stream ? 'streamed' : 'plain';
  test(`messages, mixed chains (${how}): Claude 529 → OpenAI-type, OpenAI-type 500 → Claude`, async () => {
    const prompt = `Failover through the Messages door (${how})`;
    const ask = async (model) => {
      const body = { model, max_tokens: 256, messages: [{ role: 'user', content: prompt }] };
      if (!stream) {
        const { data, response } = await anthropic.messages.create(body).withResponse();
        return [data, response.headers.get('x-router-model')];
      }
      return [await anthropic.messages.stream(body).finalMessage(), null];
    };
    const [a, aModel] = await ask('a529-oai');
    eq(a.content[0].text, simText('sim-mini', prompt), 'a529-oai text');
    if (!stream) eq(aModel, 'good-mini', 'a529-oai x-router-model');
    const [b, bModel] = await ask('oai-ant');
    eq(b.content[0].text, simText('claude-sim', prompt), 'oai-ant text');
    if (!stream) eq(bModel, 'claude', 'oai-ant x-router-model');
  });
}

test("messages errors in Anthropic's shape: unknown model, missing max_tokens", async () => {
  const e1 = await expectError(anthropic.messages.create({ model: 'no-such-model', max_tokens: 16, messages: [{ role: 'user', content: 'x' }] }), 'unknown model');
  assert(e1 instanceof Anthropic.APIError && e1.status >= 400 && e1.status < 500, `unknown model: ${describeError(e1)}`);
  eq(e1.error?.type, 'error', 'unknown model: body type');
  assert(typeof e1.error?.error?.type === 'string' && typeof e1.error.error.message === 'string',
    `unknown model: Anthropic error shape: ${JSON.stringify(e1.error)}`);
  const e2 = await expectError(anthropic.messages.create({ model: 'standard', messages: [{ role: 'user', content: 'x' }] }), 'no max_tokens');
  assert(e2 instanceof Anthropic.BadRequestError, `no max_tokens: expected BadRequestError, got ${describeError(e2)}`);
  eq(e2.error?.error?.type, 'invalid_request_error', 'no max_tokens: error type');
  assert(/max_tokens/.test(e2.error.error.message), `no max_tokens: message names the field: ${e2.error.error.message}`);
});

await run();
