// What upstream receives (contract §4), the audit trail in Envoy's log and the metrics at
// /stats/prometheus (issue "An audit trail, metrics and identity forwarding", item 5).
//
// Header stripping and "no token in the log" are contract and run now; the audit record and metric
// checks are `todo` until that issue lands.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { bearer, startStack } from './lib/stack.mjs';

const TODO = process.env.FHIRGATE_E2E_STRICT ? false : 'audit and metrics (issue 6) not merged yet';

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

  test('one audit record per decision, with the request id', { todo: TODO }, async () => {
    const tok = await idp.token({ scope: 'system/*.rs' });
    const before = envoy.log().length;
    const allowed = await envoy.request('/fhir/Patient/pat-alice', { headers: bearer(tok) });
    const denied = await envoy.request('/fhir/Patient/pat-alice');
    assert.equal(allowed.status, 200);
    assert.equal(denied.status, 401);
    await new Promise((r) => setTimeout(r, 500));
    const fresh = envoy.log().slice(before);
    const records = fresh.split('\n').map((l) => {
      const i = l.indexOf('{');
      try {
        return i >= 0 ? JSON.parse(l.slice(i)) : null;
      } catch {
        return null;
      }
    }).filter(Boolean);
    assert.ok(records.length >= 2, `audit records in the log:\n${fresh.slice(0, 2000)}`);
    assert.ok(!fresh.includes(tok.access_token.split('.')[2]));
  });

  test('fhirgate metrics are visible at /stats/prometheus', { todo: TODO }, async () => {
    const text = await envoy.prometheus();
    assert.match(text, /fhirgate/);
  });
});
