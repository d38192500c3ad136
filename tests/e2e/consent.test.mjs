// Consent by security labels and resource rules (issue "response-side protection", items 3, 5, 6)
// through real Envoy, real oidc-provider tokens (with and without a `consent` claim) and the real
// FHIR router seeded with several patients and labelled resources.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { assertDenied, baseConfig, bearer, eventually, startStack } from './lib/stack.mjs';

const ACT = 'http://terminology.hl7.org/CodeSystem/v3-ActCode';
const CONF = 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality';
const REDACTED = { system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue', code: 'REDACTED', display: 'redacted' };

// Added to the suite's seed (which already has obs-alice-psy PSY and obs-bob-hiv HIV).
const LABELLED = [
  {
    resourceType: 'Observation', id: 'obs-alice-hiv', status: 'final', subject: { reference: 'Patient/pat-alice' },
    code: { text: 'HIV viral load' }, valueString: 'undetectable', meta: { security: [{ system: ACT, code: 'HIV' }] },
  },
  {
    // a lowercase code from a server with sloppy labels: still the sensitive code
    resourceType: 'Observation', id: 'obs-alice-sud', status: 'final', subject: { reference: 'Patient/pat-alice' },
    code: { text: 'Alcohol use' }, valueString: 'counselling', meta: { security: [{ system: ACT, code: 'sud' }] },
  },
  {
    resourceType: 'Condition', id: 'cond-alice-r', subject: { reference: 'Patient/pat-alice' },
    code: { text: 'restricted diagnosis' }, meta: { security: [{ system: CONF, code: 'R' }] },
  },
  {
    resourceType: 'Observation', id: 'obs-bob-psy', status: 'final', subject: { reference: 'Patient/pat-bob' },
    code: { text: 'Psychotherapy note' }, valueString: 'session 3', meta: { security: [{ system: ACT, code: 'PSY' }] },
  },
  {
    resourceType: 'Observation', id: 'obs-carol-n', status: 'final', subject: { reference: 'Patient/pat-carol' },
    code: { text: 'Body weight' }, valueString: '61 kg', meta: { security: [{ system: CONF, code: 'N' }] },
  },
];

// Clinicians (user/ tokens that carry `view: redacted`) see unconsented labelled records redacted.
const RULES = [{
  name: 'clinician-redacted-view',
  phase: 'response',
  effect: 'redact',
  match: "claimValues(token.claims, 'view').exists(v, v == 'redacted')",
  expression: "has(resource.meta) && has(resource.meta.security) && resource.meta.security.exists(s, has(s.code) && s.code in ['PSY', 'HIV', 'SUD', 'R'] && !(s.code in claimValues(token.claims, 'consent')))",
}];

const ids = (res) => (res.json?.entry ?? []).filter((e) => e.resource?.resourceType !== 'OperationOutcome')
  .map((e) => e.resource.id).sort();
const outcomeEntry = (res) => (res.json?.entry ?? []).find((e) => e.search?.mode === 'outcome');

describe('consent by security labels', () => {
  let stack;
  let envoy;
  let idp;
  const tokens = {};
  before(async () => {
    stack = await startStack({
      config: (ctx) => baseConfig(ctx, { rules: RULES }),
      beforeEnvoy: async ({ fhir }) => fhir.seed(LABELLED),
      // Patient/<id>/Condition below: the router has no compartment search (lib/fhir.mjs).
      fhirFixtures: ['compartment-search'],
    });
    ({ envoy, idp } = stack);
    const alice = { scope: 'launch/patient patient/*.rs', patient: 'pat-alice' };
    tokens.alice = await idp.token(alice);
    tokens.alicePsy = await idp.token({ ...alice, claims: { consent: ['PSY'] } });
    tokens.aliceAll = await idp.token({ ...alice, claims: { consent: 'PSY HIV SUD R' } });
    tokens.clinician = await idp.token({ scope: 'user/*.rs', fhirUser: 'Practitioner/dr-house', claims: { view: ['redacted'] } });
    tokens.backend = await idp.token({ scope: 'system/*.rs' });
  });
  after(async () => {
    await stack?.stop();
  });

  const get = (path, tok) => envoy.request(path, { headers: bearer(tok) });

  /** The audit records written since `count` that match `pred` (waits for the log). */
  async function auditSince(count, pred) {
    return eventually(() => envoy.auditRecords().slice(count).find(pred), { timeoutMs: 5000, intervalMs: 100 });
  }

  test('a search Bundle loses unconsented labelled entries and says so; the audit has counts and codes only', async () => {
    const count = envoy.auditRecords().length;
    const res = await get('/fhir/Observation?patient=Patient/pat-alice', tokens.alice);
    assert.equal(res.status, 200, res.text.slice(0, 300));
    assert.deepEqual(ids(res), ['obs-alice-hba1c', 'obs-alice-hr']);
    const oo = outcomeEntry(res);
    assert.ok(oo, 'an OperationOutcome entry');
    assert.equal(oo.resource.issue[0].code, 'suppressed');
    assert.match(oo.resource.issue[0].diagnostics, /^3 result\(s\) withheld/);
    assert.equal(res.json.total, undefined, 'total dropped');
    for (const leak of ['counselling', 'undetectable', 'PSY', 'HIV']) assert.ok(!res.text.includes(leak), leak);
    const rec = await auditSince(count, (r) => r.interaction === 'search-type' && r.resourceType === 'Observation');
    assert.ok(rec, `audit record:\n${envoy.log().slice(-1500)}`);
    assert.equal(rec.withheld, 3);
    assert.deepEqual(rec.withheldBy, { label: 3 });
    assert.deepEqual(rec.withheldLabels, ['HIV', 'PSY', 'SUD']);
    const line = JSON.stringify(rec);
    for (const leak of ['obs-alice-psy', 'obs-alice-hiv', 'counselling', 'undetectable']) assert.ok(!line.includes(leak), leak);
  });

  test('a single labelled read without consent is 403 and does not say why', async () => {
    const res = await get('/fhir/Observation/obs-alice-psy', tokens.alice);
    assertDenied(res, { status: 403, code: 'forbidden', token: tokens.alice });
    assert.ok(!res.text.includes('PSY') && !res.text.includes('counselling'));
    const cond = await get('/fhir/Patient/pat-alice/Condition', tokens.alice);
    assert.equal(cond.status, 200);
    assert.deepEqual(ids(cond), ['cond-alice-dm'], 'the R-labelled condition is withheld');
  });

  test('the consent claim lets exactly the granted labels through', async () => {
    const psy = await get('/fhir/Observation/obs-alice-psy', tokens.alicePsy);
    assert.equal(psy.status, 200);
    assert.equal(psy.json.valueString, 'counselling note');
    const search = await get('/fhir/Observation?patient=Patient/pat-alice', tokens.alicePsy);
    assert.deepEqual(ids(search), ['obs-alice-hba1c', 'obs-alice-hr', 'obs-alice-psy']);
    const all = await get('/fhir/Observation?patient=Patient/pat-alice', tokens.aliceAll);
    assert.deepEqual(ids(all), ['obs-alice-hba1c', 'obs-alice-hiv', 'obs-alice-hr', 'obs-alice-psy', 'obs-alice-sud']);
    assert.equal(outcomeEntry(all), undefined);
    const cond = await get('/fhir/Patient/pat-alice/Condition', tokens.aliceAll);
    assert.deepEqual(ids(cond), ['cond-alice-dm', 'cond-alice-r']);
  });

  test('consent never opens another patient\'s record', async () => {
    const res = await get('/fhir/Observation/obs-bob-psy', tokens.aliceAll);
    assertDenied(res, { status: 403, code: 'forbidden' });
  });

  test('labels apply to backend tokens too (no patient context)', async () => {
    // A search the router matches: straight at the upstream it returns Bob's labelled entries,
    // so their absence through Envoy is the filter's doing, not an empty answer.
    const path = '/fhir/Observation?patient=Patient/pat-bob';
    const direct = await (await fetch(`${stack.fhir.url}${path}`)).json();
    assert.deepEqual(direct.entry.map((e) => e.resource.id).sort(), ['obs-bob-bp', 'obs-bob-hiv', 'obs-bob-psy']);
    const res = await get(path, tokens.backend);
    assert.equal(res.status, 200, res.text.slice(0, 300));
    assert.deepEqual(ids(res), ['obs-bob-bp']);
    assert.match(outcomeEntry(res)?.resource?.issue?.[0]?.diagnostics ?? '', /^2 result\(s\) withheld/);
    assert.ok(!res.text.includes('session 3') && !res.text.includes('negative'));
    const carol = await get('/fhir/Observation/obs-carol-n', tokens.backend);
    assert.equal(carol.status, 200, 'normal confidentiality (N) is not sensitive');
  });

  test('a redact rule reduces the resource for clinicians; the audit counts it', async () => {
    const count = envoy.auditRecords().length;
    const res = await get('/fhir/Observation/obs-bob-hiv', tokens.clinician);
    assert.equal(res.status, 200, res.text.slice(0, 300));
    assert.equal(res.json.resourceType, 'Observation');
    assert.equal(res.json.id, 'obs-bob-hiv');
    assert.deepEqual(res.json.meta.security, [REDACTED]);
    assert.equal(res.json.valueString, undefined);
    assert.equal(res.json.subject, undefined);
    assert.equal(Number(res.headers['content-length'] ?? res.text.length), Buffer.byteLength(res.text));
    const rec = await auditSince(count, (r) => r.resourceId === 'obs-bob-hiv');
    assert.ok(rec);
    assert.equal(rec.redacted, 1);
    assert.equal(rec.withheld, 0);
    const search = await get('/fhir/Observation?patient=Patient/pat-bob', tokens.clinician);
    assert.equal(search.status, 200);
    assert.deepEqual(ids(search), ['obs-bob-bp', 'obs-bob-hiv', 'obs-bob-psy']);
    const redacted = search.json.entry.filter((e) => e.resource.meta?.security?.[0]?.code === 'REDACTED');
    assert.equal(redacted.length, 2);
    assert.ok(!search.text.includes('session 3') && !search.text.includes('negative'));
  });

  test('fhirgate counts withheld and redacted resources in its metrics', async () => {
    const text = await envoy.prometheus();
    assert.match(text, /response_entries_withheld_total\S*\s+[1-9]/);
    assert.match(text, /response_resources_redacted_total\S*\s+[1-9]/);
  });
});
