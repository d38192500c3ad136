// What upstream receives (contract §4), the audit trail in Envoy's log and the metrics at
// /stats/prometheus (issue "An audit trail, metrics and identity forwarding", item 5).
//
// Audit records are the `fhirgate.audit {json}` lines of Envoy's log (src/audit.rs AUDIT_PREFIX).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { bearer, eventually, startStack } from './lib/stack.mjs';

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
    await new Promise((r) => setTimeout(r, 500));
    const log = envoy.log();
    const [, payload, sig] = tok.access_token.split('.');
    assert.ok(!log.includes(payload), 'the token payload is in the log');
    assert.ok(!log.includes(sig.slice(0, 40)), 'the token signature is in the log');
  });

  test('one audit record per decision, with the request id', async () => {
    const tok = await idp.token({ scope: 'system/*.rs', patient: 'pat-alice' });
    const count = envoy.auditRecords().length;
    const allowed = await envoy.request('/fhir/Patient/pat-alice', { headers: bearer(tok) });
    assert.equal(allowed.status, 200);
    const upstreamId = fhir.requests.at(-1).headers['x-request-id'];
    const denied = await envoy.request('/fhir/Patient/pat-bob');
    assert.equal(denied.status, 401);
    const records = await eventually(() => {
      const r = envoy.auditRecords().slice(count);
      return r.length >= 2 ? r : null;
    }, { timeoutMs: 5000, intervalMs: 100 });
    assert.ok(records, `audit records in the log:\n${envoy.log().slice(-2000)}`);
    const allow = records.find((r) => r.requestId === upstreamId);
    assert.ok(allow, `an audit record with the upstream's x-request-id ${upstreamId}`);
    assert.equal(allow.outcome, 'allow');
    const deny = records.find((r) => r.outcome === 'deny');
    assert.ok(deny, 'a deny record');
    assert.equal(deny.status, 401);
    assert.ok(typeof deny.reason === 'string' && deny.reason.length > 0);
    const text = JSON.stringify(records);
    assert.ok(!text.includes(tok.access_token.split('.')[1]), 'token in an audit record');
    assert.ok(!text.includes(tok.access_token.split('.')[2].slice(0, 40)), 'token in an audit record');
  });

  test('fhirgate metrics are visible at /stats/prometheus', async () => {
    const text = await envoy.prometheus();
    assert.match(text, /fhirgate/);
  });
});
