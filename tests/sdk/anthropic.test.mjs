// The official OpenAI Node SDK's Chat Completions with tools over an
// Anthropic upstream (issue 13 §4): llmrouter translates the chat body into
// a Messages request for a `type: anthropic` model and the answer (plain and
// streamed) back, and the SDK's helpers (stream(), runTools(), zodFunction
// parsing) must work on the translated answer as on OpenAI's.
//
// Environment: LLMROUTER_URL, LLMROUTER_URL_NOV1, SIM_STATS_URL, given by
// tests/with_daemon.py with tests/sdk/llmrouter-sdk.yaml (tests/sdk/run.sh).
// The simulated provider's Messages API (tests/sim/README.md, "Anthropic
// Messages API") calls the tools named in the last user turn, after a text
// block "Calling <names>." under tool_choice auto, with ids
// toolu_sim_<messages>_<k> and inputs built from the schema; after tool
// results it answers "Simulated reply from claude-sim with N tool result(s):
// <tool_use_id>=<content>; ...".

import OpenAI from 'openai';
import { zodFunction } from 'openai/helpers/zod';
import { z } from 'zod';
import { assert, eq, deepEq, describeError, env, makeSuite, simReset, simRequestsTo } from './harness.mjs';

const { BASE, SIM } = env();
const client = new OpenAI({ baseURL: BASE, apiKey: 'client-key-anthropic', maxRetries: 0, timeout: 20000 });
const { test, run } = makeSuite();

const weatherZod = z.object({ city: z.string(), unit: z.enum(['celsius', 'fahrenheit']) });
const weatherTool = zodFunction({ name: 'get_weather', parameters: weatherZod, description: 'Weather forecast' });
const WEATHER_ARGS = { city: 'sim-city', unit: 'celsius' };
const timeParams = {
  type: 'object', properties: { timezone: { type: 'string' }, hour24: { type: 'boolean' } }, required: ['timezone'],
};
const timeTool = { type: 'function', function: { name: 'get_time', description: 'Current time', parameters: timeParams } };
const TIME_ARGS = { timezone: 'sim-timezone' };
const BOTH = 'Please call get_weather and get_time for me.';
const user = (content) => [{ role: 'user', content }];

function expectCalls(message, want, what) {
  const calls = message?.tool_calls;
  assert(Array.isArray(calls), `${what}: message.tool_calls is not an array: ${JSON.stringify(message)}`);
  eq(calls.length, want.length, `${what}: number of tool calls`);
  want.forEach(([name, args, id], i) => {
    const tc = calls[i];
    eq(tc.type, 'function', `${what}: tool_calls[${i}].type`);
    eq(tc.id, id, `${what}: tool_calls[${i}].id (Anthropic's tool_use id)`);
    eq(tc.function?.name, name, `${what}: tool_calls[${i}].function.name`);
    let parsed;
    try {
      parsed = JSON.parse(tc.function.arguments);
    } catch {
      throw new Error(`${what}: tool_calls[${i}].function.arguments is not JSON: ${tc.function.arguments}`);
    }
    deepEq(parsed, args, `${what}: tool_calls[${i}] arguments`);
  });
}

// The one Messages request the simulator saw for this case.
async function upstreamMessages(what) {
  const reqs = await simRequestsTo(SIM, '/messages');
  eq(reqs.length, 1, `${what}: requests to /messages`);
  return reqs[0];
}

test('create() with two tools: text plus both calls, Anthropic ids, tool_use on the wire', async () => {
  await simReset(SIM);
  const { data, response } = await client.chat.completions
    .create({ model: 't-claude', messages: user(BOTH), tools: [weatherTool, timeTool] })
    .withResponse();
  eq(response.headers.get('x-router-model'), 'claude', 'x-router-model');
  eq(response.headers.get('x-router-provider'), 'ant', 'x-router-provider');
  eq(data.object, 'chat.completion', 'object');
  const ch = data.choices[0];
  eq(ch.finish_reason, 'tool_calls', 'finish_reason');
  eq(ch.message.content, 'Calling get_weather, get_time.', 'text before the calls');
  expectCalls(ch.message, [['get_weather', WEATHER_ARGS, 'toolu_sim_1_0'], ['get_time', TIME_ARGS, 'toolu_sim_1_1']], 'plain');
  assert(data.usage.prompt_tokens > 0 && data.usage.completion_tokens > 0, `usage ${JSON.stringify(data.usage)}`);
  const up = await upstreamMessages('plain');
  deepEq(up.body.tools.map((t) => t.name), ['get_weather', 'get_time'], 'upstream tool names');
  deepEq(up.body.tools[1].input_schema, timeParams, 'upstream input_schema');
  eq(up.headers.authorization, undefined, 'no Authorization header upstream');
  assert(up.headers['x-api-key'], 'x-api-key sent upstream');
});

test('tool_choice required + parallel_tool_calls false, a named tool, none', async () => {
  await simReset(SIM);
  const one = await client.chat.completions.create({
    model: 't-claude', messages: user('Nothing named here'), tools: [weatherTool, timeTool],
    tool_choice: 'required', parallel_tool_calls: false,
  });
  expectCalls(one.choices[0].message, [['get_weather', WEATHER_ARGS, 'toolu_sim_1_0']], 'required');
  eq(one.choices[0].message.content, null, 'required: no text');
  const up = await upstreamMessages('required');
  deepEq(up.body.tool_choice, { type: 'any', disable_parallel_tool_use: true }, 'upstream tool_choice');
  const named = await client.chat.completions.create({
    model: 't-claude', messages: user(BOTH), tools: [weatherTool, timeTool],
    tool_choice: { type: 'function', function: { name: 'get_time' } },
  });
  expectCalls(named.choices[0].message, [['get_time', TIME_ARGS, 'toolu_sim_1_0']], 'named');
  eq(named.choices[0].finish_reason, 'tool_calls', 'named finish_reason');
  const none = await client.chat.completions.create({
    model: 't-claude', messages: user(BOTH), tools: [weatherTool, timeTool], tool_choice: 'none',
  });
  eq(none.choices[0].finish_reason, 'stop', 'none: finish_reason');
  eq(none.choices[0].message.tool_calls, undefined, 'none: tool_calls');
  eq(none.choices[0].message.content, `Simulated reply from claude-sim: ${BOTH}`, 'none: content');
});

test('parse() with a zodFunction tool: parsed_arguments from a translated answer', async () => {
  // parse() auto-parses strict tools only: both are zod tools here
  const strictTime = zodFunction({ name: 'get_time', parameters: z.object({ timezone: z.string(), hour24: z.boolean() }) });
  const r = await client.chat.completions.parse({ model: 't-claude', messages: user(BOTH), tools: [weatherTool, strictTime] });
  const msg = r.choices[0].message;
  const time = { timezone: 'sim-timezone', hour24: true };
  expectCalls(msg, [['get_weather', WEATHER_ARGS, 'toolu_sim_1_0'], ['get_time', time, 'toolu_sim_1_1']], 'parse');
  deepEq(msg.tool_calls[0].function.parsed_arguments, WEATHER_ARGS, 'get_weather parsed_arguments');
  deepEq(msg.tool_calls[1].function.parsed_arguments, time, 'get_time parsed_arguments');
});

test('chat.completions.stream(): text plus several tools in one turn accumulate without error', async () => {
  const stream = client.chat.completions.stream({
    model: 't-claude', messages: user(BOTH), tools: [weatherTool, timeTool], stream_options: { include_usage: true },
  });
  const chunks = [];
  const done = [];
  let contentDeltas = 0;
  stream.on('chunk', (c) => chunks.push(c));
  stream.on('content.delta', () => { contentDeltas++; });
  stream.on('tool_calls.function.arguments.done', (e) => done.push(e));
  const final = await stream.finalChatCompletion();
  const ch = final.choices[0];
  eq(ch.finish_reason, 'tool_calls', 'finish_reason');
  eq(ch.message.content, 'Calling get_weather, get_time.', 'accumulated text');
  assert(contentDeltas >= 2, `text came in ${contentDeltas} delta(s)`);
  expectCalls(ch.message, [['get_weather', WEATHER_ARGS, 'toolu_sim_1_0'], ['get_time', TIME_ARGS, 'toolu_sim_1_1']], 'stream');
  deepEq(ch.message.tool_calls[0].function.parsed_arguments, WEATHER_ARGS, 'zod tool parsed_arguments');
  deepEq(done.map((e) => e.name), ['get_weather', 'get_time'], "'arguments.done' names");
  deepEq(done[0].parsed_arguments, WEATHER_ARGS, "'arguments.done' parsed_arguments of the zod tool");
  deepEq(JSON.parse(done[1].arguments), TIME_ARGS, "'arguments.done' arguments of the JSON Schema tool");
  const roles = chunks.filter((c) => c.choices[0]?.delta?.role);
  eq(roles.length, 1, 'chunks carrying the role');
  const last = chunks[chunks.length - 1];
  eq(last.choices.length, 0, 'usage chunk has no choices');
  assert(last.usage?.completion_tokens > 0 && typeof last.usage.cost === 'number', `usage chunk ${JSON.stringify(last.usage)}`);
});

test('chat.completions.stream(): one forced tool, no text', async () => {
  const final = await client.chat.completions.stream({
    model: 't-claude', messages: user(BOTH), tools: [weatherTool, timeTool],
    tool_choice: { type: 'function', function: { name: 'get_weather' } },
  }).finalChatCompletion();
  const ch = final.choices[0];
  eq(ch.finish_reason, 'tool_calls', 'finish_reason');
  expectCalls(ch.message, [['get_weather', WEATHER_ARGS, 'toolu_sim_1_0']], 'forced stream');
  assert(!ch.message.content, `no text expected, got ${JSON.stringify(ch.message.content)}`);
});

async function runToolsCase(stream) {
  await simReset(SIM);
  const calls = [];
  const runner = client.chat.completions.runTools({
    model: 't-claude',
    messages: user(BOTH),
    ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}),
    tools: [
      {
        type: 'function',
        function: {
          name: 'get_weather', description: 'Weather forecast',
          parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
          parse: JSON.parse,
          function: (args) => { calls.push(['get_weather', args]); return `sunny in ${args.city}`; },
        },
      },
      {
        type: 'function',
        function: {
          name: 'get_time', description: 'Current time', parameters: timeParams, parse: JSON.parse,
          function: (args) => { calls.push(['get_time', args]); return `noon in ${args.timezone}`; },
        },
      },
    ],
  });
  const content = await runner.finalContent();
  deepEq(calls, [['get_weather', { city: 'sim-city' }], ['get_time', TIME_ARGS]], 'local functions called');
  eq(content, 'Simulated reply from claude-sim with 2 tool result(s): toolu_sim_1_0=sunny in sim-city; toolu_sim_1_1=noon in sim-timezone',
    'final content (the tool results reached Claude linked by tool_use_id)');
  deepEq(runner.messages.map((m) => m.role), ['user', 'assistant', 'tool', 'tool', 'assistant'], 'conversation roles');
  const reqs = await simRequestsTo(SIM, '/messages');
  eq(reqs.length, 2, 'requests to /messages');
  const second = reqs[1].body;
  deepEq(second.messages.map((m) => m.role), ['user', 'assistant', 'user'], 'upstream turns (tool results merged in one user turn)');
  deepEq(second.messages[1].content.filter((b) => b.type === 'tool_use').map((b) => b.id), ['toolu_sim_1_0', 'toolu_sim_1_1'],
    'assistant tool_use ids sent back');
  deepEq(second.messages[2].content.map((b) => [b.type, b.tool_use_id]),
    [['tool_result', 'toolu_sim_1_0'], ['tool_result', 'toolu_sim_1_1']], 'tool_result blocks');
  eq(second.stream === true, stream, 'upstream stream flag');
}

test('runTools(): local functions called, results sent back as tool_result blocks', () => runToolsCase(false));
test('runTools() streamed: the same round trip over SSE', () => runToolsCase(true));

test('mixed chain with tools: Claude overloaded (529) → the OpenAI-type model serves, plain and streamed', async () => {
  const { data, response } = await client.chat.completions
    .create({ model: 'a529-oai', messages: user(BOTH), tools: [weatherTool, timeTool] })
    .withResponse();
  eq(response.headers.get('x-router-model'), 'good-mini', 'x-router-model');
  eq(response.headers.get('x-router-attempts'), '2', 'x-router-attempts');
  deepEq(data.choices[0].message.tool_calls.map((t) => t.id), ['call_sim_1_0_0', 'call_sim_1_0_1'], 'OpenAI-type ids');
  const final = await client.chat.completions
    .stream({ model: 'a529-oai', messages: user(BOTH), tools: [weatherTool, timeTool] })
    .finalChatCompletion();
  deepEq(final.choices[0].message.tool_calls.map((t) => t.function.name), ['get_weather', 'get_time'], 'streamed names');
  eq(final.model, 'sim-mini', 'streamed model');
});

test('mixed chain with tools: the OpenAI-type model fails (500) → Claude serves, plain and streamed', async () => {
  const { data, response } = await client.chat.completions
    .create({ model: 'oai-ant', messages: user(BOTH), tools: [weatherTool, timeTool] })
    .withResponse();
  eq(response.headers.get('x-router-model'), 'claude', 'x-router-model');
  expectCalls(data.choices[0].message, [['get_weather', WEATHER_ARGS, 'toolu_sim_1_0'], ['get_time', TIME_ARGS, 'toolu_sim_1_1']], 'failover plain');
  const final = await client.chat.completions
    .stream({ model: 'oai-ant', messages: user(BOTH), tools: [weatherTool, timeTool] })
    .finalChatCompletion();
  expectCalls(final.choices[0].message, [['get_weather', WEATHER_ARGS, 'toolu_sim_1_0'], ['get_time', TIME_ARGS, 'toolu_sim_1_1']], 'failover stream');
  eq(final.model, 'claude-sim', 'streamed model');
});

test('a tool_choice naming an unknown tool: BadRequestError, OpenAI shape', async () => {
  let err = null;
  try {
    await client.chat.completions.create({
      model: 't-claude', messages: user('x'), tools: [timeTool],
      tool_choice: { type: 'function', function: { name: 'nope' } },
    });
  } catch (e) {
    err = e;
  }
  assert(err instanceof OpenAI.BadRequestError, `expected BadRequestError, got ${err ? describeError(err) : 'success'}`);
  assert(typeof err.error?.message === 'string' && err.error.message.length > 0, `error body ${JSON.stringify(err.error)}`);
  assert('type' in (err.error ?? {}), `error.type missing: ${JSON.stringify(err.error)}`);
});

await run();
