// What upstream receives (contract §4), the audit trail in Envoy's log and the metrics at
// /stats/prometheus (issue "An audit trail, metrics and identity forwarding", item 5).
//
// Audit records are the `fhirgate.audit {json}` lines of Envoy's log (src/audit.rs AUDIT_PREFIX).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { startCollector } from './lib/collector.mjs';
import { baseConfig, bearer, eventually, logSettled, startStack } from './lib/stack.mjs';

describe('forwarding, audit and metrics', () => {
  let stack;
  let envoy;
  let idp;
  let fhir;
  before(async () => {
    stack = await startStack();
    ({ envoy, idp, fhir } = stack);
  });
  after(async () => {
    await stack?.stop();
  });

  test('spoofed x-fhirgate-* headers never reach the upstream', async () => {
    const tok = await idp.token({ scope: 'system/*.rs' });
    const spoof = `spoofed-${randomUUID()}`;
    const res = await envoy.request('/fhir/Patient/pat-alice', {
      headers: bearer(tok, { 'x-fhirgate-patient': spoof, 'X-FhirGate-Subject': spoof, 'x-fhirgate-decision': 'allow' }),
    });
    assert.equal(res.status, 200, res.text.slice(0, 300));
    const seen = fhir.requests.at(-1);
    for (const [name, value] of Object.entries(seen.headers)) {
      assert.ok(!String(value).includes(spoof), `upstream received the spoofed ${name}`);
      if (name.startsWith('x-fhirgate-')) assert.notEqual(value, 'allow', `upstream received the spoofed ${name}`);
    }
  });

  test('a denied request with spoofed headers does not reach the upstream at all', async () => {
    const count = fhir.requests.length;
    const res = await envoy.request('/fhir/Patient/pat-alice', { headers: { 'x-fhirgate-decision': 'allow' } });
    assert.equal(res.status, 401);
    assert.equal(fhir.requests.length, count);
  });

  test('Envoy\'s log never contains a token, valid or forged', async () => {
    const tok = await idp.token({ scope: 'system/*.rs' });
    await envoy.request('/fhir/Patient/pat-alice', { headers: bearer(tok) });
    const forged = `${tok.access_token.slice(0, -4)}AAAA`;
    await envoy.request('/fhir/Patient/pat-alice', { headers: bearer(forged) });
    await logSettled(envoy);
    const log = envoy.log();
    const [, payload, sig] = tok.access_token.split('.');
    assert.ok(!log.includes(payload), 'the token payload is in the log');
    assert.ok(!log.includes(sig.slice(0, 40)), 'the token signature is in the log');
  });

  test('exactly one audit record per decision, with the request id', async () => {
    const tok = await idp.token({ scope: 'system/*.rs', patient: 'pat-alice' });
    const allowedId = randomUUID();
    const deniedId = randomUUID();
    const allowed = await envoy.request('/fhir/Patient/pat-alice', { headers: bearer(tok, { 'x-request-id': allowedId }) });
    assert.equal(allowed.status, 200);
    assert.equal(fhir.requests.at(-1).headers['x-request-id'], allowedId, 'the upstream saw the request id');
    const denied = await envoy.request('/fhir/Patient/pat-bob', { headers: { 'x-request-id': deniedId } });
    assert.equal(denied.status, 401);
    // A later request's record marks the log as complete for both (no second record can follow).
    await logSettled(envoy);
    const records = envoy.auditRecords();
    const allow = records.filter((r) => r.requestId === allowedId);
    const deny = records.filter((r) => r.requestId === deniedId);
    assert.equal(allow.length, 1, `records of the allowed request: ${JSON.stringify(allow)}`);
    assert.equal(deny.length, 1, `records of the denied request: ${JSON.stringify(deny)}`);
    assert.equal(allow[0].outcome, 'allow');
    assert.equal(allow[0].reason, 'allow');
    assert.equal(deny[0].outcome, 'deny');
    assert.equal(deny[0].status, 401);
    assert.equal(deny[0].reason, 'token.missing');
    const text = JSON.stringify([...allow, ...deny]);
    assert.ok(!text.includes(tok.access_token.split('.')[1]), 'token in an audit record');
    assert.ok(!text.includes(tok.access_token.split('.')[2].slice(0, 40)), 'token in an audit record');
  });

  test('fhirgate metrics at /stats/prometheus count decisions by reason', async () => {
    const value = async (name) => {
      const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)`, 'm').exec(await envoy.prometheus());
      return m ? Number(m[1]) : 0;
    };
    const tok = await idp.token({ scope: 'system/*.rs' });
    const allow0 = await value('fhirgate_decisions_allow_allow');
    const missing0 = await value('fhirgate_decisions_deny_token_missing');
    assert.equal((await envoy.request('/fhir/Patient/pat-alice', { headers: bearer(tok) })).status, 200);
    for (let i = 0; i < 2; i += 1) assert.equal((await envoy.request('/fhir/Patient/pat-alice')).status, 401);
    const counted = await eventually(async () => {
      const a = await value('fhirgate_decisions_allow_allow');
      const m = await value('fhirgate_decisions_deny_token_missing');
      return a >= allow0 + 1 && m >= missing0 + 2 ? { a, m } : null;
    }, { timeoutMs: 10_000, intervalMs: 200 });
    assert.ok(counted, 'decision counters did not move');
    assert.equal(counted.a, allow0 + 1, 'one allow counted');
    assert.equal(counted.m, missing0 + 2, 'two token.missing denials counted');
    // The decision latency histogram (README, metrics) has samples.
    const text = await envoy.prometheus();
    const count = /^fhirgate_decision_ms_count(?:\{[^}]*\})? (\d+)/m.exec(text);
    assert.ok(count && Number(count[1]) > 0, `fhirgate_decision_ms_count:\n${text.split('\n').filter((l) => l.startsWith('fhirgate_decision_ms')).join('\n')}`);
    assert.match(text, /^fhirgate_decision_ms_bucket\{[^}]*le="[^"]+"[^}]*\} \d+/m, 'decision_ms buckets');
  });
});

// Issue 6 items 1-3 with every option on: pseudonymous subjects, the collector (a Node server
// reached through the Envoy cluster `audit`), the access-log data and the metrics.
describe('audit collector, access log and metrics', () => {
  const AUDIT_KEY = Buffer.alloc(32, 7).toString('base64url');
  const FORWARD_KEY = Buffer.alloc(32, 9).toString('base64url');
  // A request that waited on the hanging collector would take at least this long.
  const COLLECTOR_TIMEOUT_MS = 2000;
  let stack;
  let envoy;
  let idp;
  let collector;
  const stat = async (name) => {
    const text = await envoy.prometheus();
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)`, 'm').exec(text);
    return m ? Number(m[1]) : undefined;
  };
  before(async () => {
    collector = await startCollector();
    stack = await startStack({
      clusters: { audit: collector.port },
      config: (ctx) => baseConfig(ctx, {
        forward: { headers: { 'x-fhirgate-pseudonym': 'pseudonym' }, pseudonymSecret: FORWARD_KEY },
        audit: {
          accessLog: true,
          subject: 'pseudonym',
          pseudonymSecret: AUDIT_KEY,
          collector: {
            cluster: 'audit', authority: `127.0.0.1:${collector.port}`, path: '/ingest',
            batchSize: 3, flushInterval: '200ms', timeout: COLLECTOR_TIMEOUT_MS + 'ms', maxInFlight: 2, maxQueue: 50,
          },
        },
      }),
    });
    ({ envoy, idp } = stack);
  });
  after(async () => {
    await stack?.stop();
    await collector?.stop();
  });

  test('batches reach the collector with every record and no token', async () => {
    const tok = await idp.token({ scope: 'system/*.rs', claims: { purpose_of_use: 'TREAT' } });
    const ids = [];
    for (let i = 0; i < 4; i += 1) {
      const id = randomUUID();
      ids.push(id);
      const res = await envoy.request('/fhir/Patient/pat-alice', { headers: bearer(tok, { 'x-request-id': id }) });
      assert.equal(res.status, 200, res.text.slice(0, 300));
    }
    const denied = randomUUID();
    await envoy.request('/fhir/Patient/pat-alice', { headers: { 'x-request-id': denied } });
    const got = await eventually(() => {
      const seen = new Set(collector.records.map((r) => r.requestId));
      return [...ids, denied].every((id) => seen.has(id));
    }, { timeoutMs: 10_000, intervalMs: 100 });
    assert.ok(got, `records at the collector: ${JSON.stringify(collector.records).slice(0, 500)}`);
    const batch = collector.batches.at(-1);
    assert.equal(batch.path, '/ingest');
    assert.equal(batch.headers['content-type'], 'application/x-ndjson');
    assert.ok(collector.batches.every((b) => b.records.length <= 3), 'batchSize bounds every batch');
    const rec = collector.records.find((r) => r.requestId === ids[0]);
    assert.equal(rec.outcome, 'allow');
    assert.equal(rec.interaction, 'read');
    assert.equal(rec.resourceType, 'Patient');
    assert.deepEqual(rec.purposeOfUse, ['TREAT']);
    assert.equal(rec.subject, undefined, 'plain subject with audit.subject pseudonym');
    assert.match(rec.subjectPseudonym, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(collector.records.find((r) => r.requestId === denied).reason, 'token.missing');
    // The audit pseudonym is not the one upstream receives (different keys).
    const upstream = stack.fhir.requests.at(-1).headers['x-fhirgate-pseudonym'];
    assert.ok(upstream && upstream !== rec.subjectPseudonym, 'forwarded and audit pseudonyms differ');
    const all = collector.batches.map((b) => b.body).join('\n');
    const [, payload, sig] = tok.access_token.split('.');
    assert.ok(!all.includes(payload) && !all.includes(sig.slice(0, 40)), 'token shipped to the collector');
    console.log(`sample audit record: ${JSON.stringify(rec)}`);
  });

  test('the access log carries the decision data', async () => {
    const tok = await idp.token({ scope: 'system/*.rs' });
    const allowed = randomUUID();
    const denied = randomUUID();
    const searched = randomUUID();
    await envoy.request('/fhir/Patient/pat-alice', { headers: bearer(tok, { 'x-request-id': allowed }) });
    // a search value is PHI: the ready format logs the path without its query
    await envoy.request('/fhir/Observation?code=phi-search-value-7731', { headers: bearer(tok, { 'x-request-id': searched }) });
    await envoy.request('/fhir/Patient/pat-alice', { headers: { 'x-request-id': denied } });
    const lines = await eventually(() => {
      const log = envoy.accessLog();
      const a = log.find((l) => l.request_id === allowed);
      const d = log.find((l) => l.request_id === denied);
      const q = log.find((l) => l.request_id === searched);
      return a && d && q ? { a, d, q } : null;
    }, { timeoutMs: 5000, intervalMs: 100 });
    assert.ok(lines, `access log: ${JSON.stringify(envoy.accessLog().slice(-3))}`);
    assert.equal(lines.a.status, 200);
    assert.equal(lines.a.fhirgate_outcome, 'allow');
    assert.equal(lines.a.fhirgate_reason, 'allow');
    assert.equal(lines.a.fhirgate_interaction, 'read');
    assert.equal(lines.a.fhirgate_resource_type, 'Patient');
    assert.ok(lines.a.fhirgate_client_id, 'client id');
    assert.match(lines.a.fhirgate_subject, /^[A-Za-z0-9_-]{43}$/, 'the pseudonymous subject');
    assert.equal(lines.d.status, 401);
    assert.equal(lines.d.fhirgate_outcome, 'deny');
    assert.equal(lines.d.fhirgate_reason, 'token.missing');
    assert.equal(lines.q.path, '/fhir/Observation');
    const text = JSON.stringify(envoy.accessLog());
    assert.ok(!text.includes(tok.access_token.split('.')[1]), 'token in the access log');
    assert.ok(!text.includes('phi-search-value-7731'), 'a search value in the access log');
    console.log(`sample access-log line: ${JSON.stringify(lines.d)}`);
  });

  test('decision, JWKS and audit metrics are at /stats/prometheus', async () => {
    const ok = await eventually(async () => (await stat('fhirgate_audit_records_shipped_total')) > 0, { timeoutMs: 5000 });
    assert.ok(ok, 'audit_records_shipped_total');
    const text = await envoy.prometheus();
    for (const name of [
      'fhirgate_decisions_allow_allow', 'fhirgate_decisions_deny_token_missing', 'fhirgate_jwks_fetches_total',
      'fhirgate_jwks_age_seconds', 'fhirgate_audit_batches_sent_total', 'fhirgate_audit_queue_depth',
    ]) {
      assert.match(text, new RegExp(`^${name}(\\{[^}]*\\})? `, 'm'), `${name} missing`);
    }
    console.log(`sample metrics:\n${text.split('\n').filter((l) => l.startsWith('fhirgate_')).join('\n')}`);
  });

  test('a collector that hangs or is down never delays requests; failures are counted', async () => {
    const tok = await idp.token({ scope: 'system/*.rs' });
    collector.mode = 'hang';
    const hungBefore = collector.batches.length;
    await envoy.request('/fhir/Patient/pat-alice', { headers: bearer(tok) });
    const hung = await eventually(() => collector.batches.length > hungBefore, { timeoutMs: 5000, intervalMs: 50 });
    assert.ok(hung, 'the hanging collector received a batch');
    // Answered while batches hang at the collector: the request path never waits on it (the
    // harness proves no callout is even dispatched from a request callback).
    // The bound comes from the configuration, not from the filter's speed: a request held until
    // the hanging batch times out would take COLLECTOR_TIMEOUT_MS or more.
    const timed = async () => {
      const t0 = performance.now();
      const res = await envoy.request('/fhir/Patient/pat-alice', { headers: bearer(tok) });
      assert.equal(res.status, 200);
      return performance.now() - t0;
    };
    const hungMs = [];
    for (let i = 0; i < 6; i += 1) hungMs.push(await timed());
    assert.ok(Math.max(...hungMs) < COLLECTOR_TIMEOUT_MS, `requests waited on the hanging collector: ${hungMs.map(Math.round)} ms`);
    await collector.stop();
    const before = (await stat('fhirgate_audit_records_failed_total')) ?? 0;
    for (let i = 0; i < 6; i += 1) {
      const res = await envoy.request('/fhir/Patient/pat-alice', { headers: bearer(tok) });
      assert.equal(res.status, 200);
    }
    const failed = await eventually(async () => {
      const n = (await stat('fhirgate_audit_records_failed_total')) ?? 0;
      return n > before ? n : null;
    }, { timeoutMs: 10_000, intervalMs: 200 });
    assert.ok(failed, 'audit_records_failed_total did not grow');
    // The log is the record of truth: every request still has its line.
    assert.ok(envoy.auditRecords().length >= 12);
    collector.mode = 'ok';
    await collector.start();
    const count = collector.records.length;
    await envoy.request('/fhir/Patient/pat-alice', { headers: bearer(tok) });
    const back = await eventually(() => collector.records.length > count, { timeoutMs: 10_000, intervalMs: 100 });
    assert.ok(back, 'shipping resumes when the collector is back');
  });
});
