// What the door and Anthropic-upstream SDK test files share: assertions, the
// simulated provider's request log, and the runner that prints
// "ok - name" / "not ok - name: reason" lines and one "N passed, M failed".

import process from 'node:process';

export class AssertionError extends Error {}

export function assert(cond, msg) {
  if (!cond) throw new AssertionError(msg);
}

export function eq(actual, expected, what) {
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

export function deepEq(actual, expected, what) {
  const a = JSON.stringify(canon(actual));
  const e = JSON.stringify(canon(expected));
  assert(a === e, `${what}: expected ${e}, got ${a}`);
}

export function describeError(err) {
  if (err instanceof AssertionError) return err.message;
  const status = err?.status ? ` (status ${err.status})` : '';
  const body = err?.error ? ` body ${JSON.stringify(err.error)}` : '';
  const cause = err?.cause?.message ? ` cause: ${err.cause.message}` : '';
  return `${err?.constructor?.name ?? 'Error'}${status}: ${err?.message ?? String(err)}${body}${cause}`
    .replace(/\s+/g, ' ')
    .slice(0, 1500);
}

// The environment tests/with_daemon.py gives: the router (with /v1 and
// without) and the simulated provider's control endpoints.
export function env() {
  const base = process.env.LLMROUTER_URL;
  const nov1 = process.env.LLMROUTER_URL_NOV1;
  const stats = process.env.SIM_STATS_URL;
  if (!base || !nov1 || !stats) {
    console.error('LLMROUTER_URL, LLMROUTER_URL_NOV1 and SIM_STATS_URL must be set (run through tests/sdk/run.sh)');
    console.log('0 passed, 1 failed');
    process.exit(1);
  }
  return { BASE: base, NOV1: nov1, SIM: stats.replace(/\/_sim\/stats$/, '') };
}

// The simulated provider's last 50 requests, oldest first.
export async function simRequests(sim) {
  const r = await fetch(`${sim}/_sim/requests`);
  return r.json();
}

export async function simReset(sim) {
  await fetch(`${sim}/_sim/reset`, { method: 'POST' });
}

// Upstream requests whose api path ends in `end` (e.g. "/messages").
export async function simRequestsTo(sim, end) {
  return (await simRequests(sim)).filter((r) => String(r.api_path ?? '').endsWith(end));
}

export function makeSuite() {
  const tests = [];
  const test = (name, fn) => tests.push({ name, fn });
  const run = async () => {
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
  };
  return { test, run };
}
