// SMART scopes, the patient compartment, batch bundles and CEL rules through real Envoy, real
// tokens and the real FHIR router (issue "Authorize FHIR requests", item 8; contract §2, §3).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { assertDenied, baseConfig, bearer, parseChallenge, startStack } from './lib/stack.mjs';

const ids = (res) => (res.json?.entry ?? []).map((e) => e.resource.id).sort();

describe('SMART scopes and the patient compartment', () => {
  let stack;
  let envoy;
  let idp;
  const tokens = {};
  let setupError;
  before(async () => {
    try {
      stack = await startStack({
        config: (ctx) => baseConfig(ctx, {
          smart: { enforce: true },
          rules: [{
            name: 'no-deletes-of-patients',
            match: "fhir.resourceType == 'Patient'",
            expression: "request.method != 'DELETE'",
            message: 'patients are never deleted through this gateway',
          }],
        }),
        // Patient/<id>/<Type> searches: the router has none, a named fixture answers (lib/fhir.mjs).
        fhirFixtures: ['compartment-search'],
      });
      ({ envoy, idp } = stack);
      tokens.alice = await idp.token({ scope: 'launch/patient patient/*.rs', patient: 'pat-alice' });
      tokens.aliceV1 = await idp.token({ scope: 'patient/*.read', patient: 'pat-alice' });
      tokens.obsOnly = await idp.token({ scope: 'patient/Observation.rs', patient: 'pat-alice' });
      tokens.noContext = await idp.token({ scope: 'patient/*.rs' });
      tokens.user = await idp.token({ scope: 'user/*.rs', fhirUser: 'Practitioner/dr-house' });
      tokens.system = await idp.token({ scope: 'system/*.cruds' });
    } catch (err) {
      // Reported by every test (a todo test does not fail the run).
      setupError = err;
    }
  });
  after(async () => {
    await stack?.stop();
  });

  const get = (path, tok) => envoy.request(path, { headers: bearer(tok) });

  test('patient scope: own record, own compartment and patient-constrained searches are allowed', async () => {
    if (setupError) throw setupError;
    assert.equal((await get('/fhir/Patient/pat-alice', tokens.alice)).status, 200);
    assert.equal((await get('/fhir/Patient/pat-alice', tokens.aliceV1)).status, 200);
    const search = await get('/fhir/Observation?patient=Patient/pat-alice&category=laboratory', tokens.alice);
    assert.equal(search.status, 200, search.text.slice(0, 300));
    assert.deepEqual(ids(search), ['obs-alice-hba1c']);
    const subject = await get('/fhir/Observation?subject=Patient/pat-alice', tokens.alice);
    assert.equal(subject.status, 200);
    const compartment = await get('/fhir/Patient/pat-alice/Condition', tokens.alice);
    assert.equal(compartment.status, 200);
    assert.deepEqual(ids(compartment), ['cond-alice-dm']);
  });

  test('patient scope: another patient is forbidden in every form', async () => {
    if (setupError) throw setupError;
    for (const path of [
      '/fhir/Patient/pat-bob',
      '/fhir/Patient/pat-bob/Observation',
      '/fhir/Observation?patient=pat-bob',
      '/fhir/Observation?subject=Patient/pat-bob',
      '/fhir/Observation?subject:Patient=pat-bob',
      '/fhir/Observation?patient=pat-alice,pat-bob',
      '/fhir/Observation?patient=pat-alice&patient=pat-bob',
      '/fhir/Patient?_id=pat-bob',
    ]) {
      const res = await get(path, tokens.alice);
      assertDenied(res, { status: 403, code: 'forbidden', token: tokens.alice });
    }
  });

  test('patient scope: a search not constrained to the patient is forbidden (or narrowed)', async () => {
    if (setupError) throw setupError;
    const res = await get('/fhir/Observation?category=laboratory', tokens.alice);
    if (res.status === 200) {
      // Query narrowing: only Alice's results may come back.
      assert.deepEqual(ids(res), ['obs-alice-hba1c']);
    } else {
      assertDenied(res, { status: 403, code: 'forbidden', token: tokens.alice });
    }
  });

  test('a patient scope without a patient claim is forbidden', async () => {
    if (setupError) throw setupError;
    const res = await get('/fhir/Patient/pat-alice', tokens.noContext);
    assertDenied(res, { status: 403, code: 'forbidden', token: tokens.noContext });
  });

  test('a missing resource-type scope: 403 insufficient_scope naming the scope', async () => {
    if (setupError) throw setupError;
    const res = await get('/fhir/Condition?patient=pat-alice', tokens.obsOnly);
    assertDenied(res, { status: 403, code: 'forbidden', error: 'insufficient_scope', token: tokens.obsOnly });
    const { params } = parseChallenge(res.headers['www-authenticate']);
    assert.match(params.scope ?? '', /Condition/);
    assert.equal((await get('/fhir/Observation?patient=pat-alice', tokens.obsOnly)).status, 200);
  });

  test('a write with a read-only scope: 403 insufficient_scope', async () => {
    if (setupError) throw setupError;
    const res = await envoy.request('/fhir/Observation', {
      method: 'POST',
      headers: { ...bearer(tokens.alice), 'content-type': 'application/fhir+json' },
      body: { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: 'Patient/pat-alice' } },
      timeoutMs: 5000,
    });
    assertDenied(res, { status: 403, code: 'forbidden', error: 'insufficient_scope', token: tokens.alice });
  });

  test('user and system scopes reach any patient; system/*.cruds may create', async () => {
    if (setupError) throw setupError;
    assert.equal((await get('/fhir/Patient/pat-bob', tokens.user)).status, 200);
    assert.equal((await get('/fhir/Observation?category=vital-signs', tokens.system)).status, 200);
    const created = await envoy.request('/fhir/Observation', {
      method: 'POST',
      headers: { ...bearer(tokens.system), 'content-type': 'application/fhir+json' },
      body: { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: 'Patient/pat-carol' } },
      timeoutMs: 5000,
    });
    assert.equal(created.status, 201, created.text.slice(0, 300));
  });

  test('a batch with one forbidden entry is denied whole', async () => {
    if (setupError) throw setupError;
    const res = await envoy.request('/fhir', {
      method: 'POST',
      headers: { ...bearer(tokens.alice), 'content-type': 'application/fhir+json' },
      body: {
        resourceType: 'Bundle',
        type: 'batch',
        entry: [{ request: { method: 'GET', url: 'Patient/pat-alice' } }, { request: { method: 'GET', url: 'Patient/pat-bob' } }],
      },
      timeoutMs: 5000,
    });
    assertDenied(res, { status: 403, code: 'forbidden', token: tokens.alice });
  });

  test('POST _search with a form body is authorized like GET', async () => {
    if (setupError) throw setupError;
    const post = (tok, form) => envoy.request('/fhir/Observation/_search', {
      method: 'POST',
      headers: { ...bearer(tok), 'content-type': 'application/x-www-form-urlencoded' },
      body: form,
      timeoutMs: 5000,
    });
    const own = await post(tokens.alice, 'patient=Patient%2Fpat-alice&category=laboratory');
    assert.equal(own.status, 200, own.text.slice(0, 300));
    assert.deepEqual(ids(own), ['obs-alice-hba1c']);
    const other = await post(tokens.alice, 'patient=pat-bob');
    assertDenied(other, { status: 403, code: 'forbidden', token: tokens.alice });
  });

  test('a CEL rule denies with its name and message', async () => {
    if (setupError) throw setupError;
    const res = await envoy.request('/fhir/Patient/pat-carol', { method: 'DELETE', headers: bearer(tokens.system) });
    assertDenied(res, { status: 403, code: 'forbidden', token: tokens.system });
    assert.match(res.text, /no-deletes-of-patients|patients are never deleted/);
  });

  test('malformed or ambiguous paths are never passed through', async () => {
    if (setupError) throw setupError;
    for (const path of [
      '/fhir/patient/pat-alice',
      '/fhir/Patient/pat-alice/../pat-bob',
      '/fhir/Patient/pat-alice%2F..%2Fpat-bob',
      '/fhir/Patient//pat-alice',
      '/fhir/Patient;x=y/pat-alice',
      '/fhir/NoSuchType/1',
    ]) {
      const res = await get(path, tokens.system);
      // README: an unknown or lowercase type, `..`, encoded `/`, empty segments and matrix
      // parameters are a malformed FHIR request: 400 `invalid`.
      assertDenied(res, { status: 400, code: 'invalid' });
      assert.equal(res.headers['x-upstream-saw-fhirgate'], undefined, `${path} reached the upstream`);
    }
  });
});
