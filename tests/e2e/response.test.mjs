// Issue 12, response side, as attacks through real Envoy: the upstream answers what a test tells
// it (lib/scripted-upstream.mjs beside the FHIR router). Every returned resource is checked
// whatever the request; ambiguous JSON and unknown shapes are 502; answers that cannot be read
// (compressed, truncated, oversized, not JSON) are 502 or cut off, and the worker keeps serving.
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { baseConfig, bearer, eventually, startStack } from './lib/stack.mjs';
import { scripted } from './lib/scripted-upstream.mjs';

const MAX = 4096;
const obs = (id, patient) => ({
  resourceType: 'Observation', id, status: 'final', code: { text: 'x' }, subject: { reference: `Patient/${patient}` },
});
const searchset = (entries) => ({
  resourceType: 'Bundle', type: 'searchset', total: entries.length,
  entry: entries.map(([resource, mode = 'match']) => ({ resource, search: { mode } })),
});
const ids = (res) => (res.json?.entry ?? []).filter((e) => e.resource?.resourceType !== 'OperationOutcome')
  .map((e) => e.resource.id);

describe('response side: every returned resource is checked', () => {
  let stack;
  let envoy;
  let script;
  const tokens = {};
  before(async () => {
    stack = await startStack({
      config: (ctx) => baseConfig(ctx, { fhir: { basePath: '/fhir', maxResponseBytes: MAX } }),
      beforeEnvoy: async ({ fhir }) => { script = scripted(fhir); },
    });
    ({ envoy } = stack);
    const { idp } = stack;
    tokens.alice = await idp.token({ scope: 'launch/patient patient/*.rs', patient: 'pat-alice' });
    tokens.aliceObs = await idp.token({ scope: 'launch/patient patient/Observation.rs', patient: 'pat-alice' });
    tokens.userPatient = await idp.token({ scope: 'user/Patient.rs', fhirUser: 'Practitioner/dr-house' });
  });
  after(async () => {
    await stack?.stop();
  });

  const get = (path, tok) => envoy.request(path, { headers: bearer(tok) });
  /** Waits for an audit record since `count` with the response reason `why` (records are
   *  written asynchronously, so an earlier test's may come later: match by reason). */
  async function audited(count, path, why) {
    const rec = await eventually(
      () => envoy.auditRecords().slice(count).find((r) => r.reason === why),
      { timeoutMs: 5000, intervalMs: 100 },
    );
    assert.ok(rec, `no audit record ${why} for ${path}:\n${envoy.log().slice(-1500)}`);
  }

  test('a read of Patient/pat-alice answered with pat-bob is 403, for patient and user tokens', async () => {
    script.answer('/fhir/Patient/pat-alice', { json: { resourceType: 'Patient', id: 'pat-bob', name: [{ family: 'Baker' }] } });
    for (const tok of [tokens.alice, tokens.userPatient]) {
      const res = await get('/fhir/Patient/pat-alice', tok);
      assert.equal(res.status, 403, res.text.slice(0, 200));
      assert.equal(res.json.issue[0].code, 'forbidden');
      assert.ok(!res.text.includes('Baker'));
    }
    script.forget('/fhir/Patient/pat-alice');
  });

  test('a search whose server ignored the patient parameter loses the other patient', async () => {
    const path = '/fhir/Observation?patient=pat-alice&code=scripted-lenient';
    script.answer(path, { json: searchset([[obs('a1', 'pat-alice')], [obs('b1', 'pat-bob')]]) });
    const res = await get(path, tokens.alice);
    assert.equal(res.status, 200);
    assert.deepEqual(ids(res), ['a1']);
    assert.ok(!res.text.includes('pat-bob'));
  });

  test('included resources of types the token cannot read are withheld (_include, _revinclude, *)', async () => {
    const body = searchset([
      [obs('a1', 'pat-alice')],
      [{ resourceType: 'Patient', id: 'pat-alice', name: [{ family: 'Anders' }] }, 'include'],
      [{ resourceType: 'Condition', id: 'c1', subject: { reference: 'Patient/pat-alice' } }, 'include'],
    ]);
    for (const q of ['_include=Observation:subject', '_include=*', '_revinclude=*']) {
      const path = `/fhir/Observation?patient=pat-alice&${q}`;
      script.answer(path, { json: body });
      const res = await get(path, tokens.aliceObs);
      assert.equal(res.status, 200, `${q}: ${res.text.slice(0, 200)}`);
      assert.deepEqual(ids(res), ['a1'], q);
      assert.ok(!res.text.includes('Anders'), q);
    }
  });

  test('$everything and $meta answers are checked like any other', async () => {
    const every = '/fhir/Patient/pat-alice/$everything';
    script.answer(every, { json: searchset([
      [{ resourceType: 'Patient', id: 'pat-alice' }], [obs('a1', 'pat-alice')], [obs('b1', 'pat-bob')],
      [{ resourceType: 'Patient', id: 'pat-bob' }],
    ]) });
    const res = await get(every, tokens.alice);
    assert.equal(res.status, 200);
    assert.deepEqual(ids(res), ['pat-alice', 'a1']);
    const meta = '/fhir/Observation/obs-alice-hr/$meta';
    script.answer(meta, { json: { resourceType: 'Parameters', parameter: [{ name: 'return', valueMeta: { versionId: '1' } }] } });
    assert.equal((await get(meta, tokens.alice)).status, 403);
  });

  test('duplicate member names and unknown shapes are 502, never read one way and forwarded', async () => {
    const cases = [
      ['/fhir/Observation/obs-alice-hr', '{"resourceType":"Observation","id":"obs-alice-hr","subject":{"reference":"Patient/pat-alice"},"subject":{"reference":"Patient/pat-bob"}}', 'response.ambiguous_json'],
      ['/fhir/Observation?patient=pat-alice&code=scripted-shape', JSON.stringify({ resourceType: 'Bundle', type: 'searchset', entry: { resource: obs('b1', 'pat-bob') } }), 'response.malformed'],
      ['/fhir/Observation?patient=pat-alice&code=scripted-ref', JSON.stringify(searchset([[{ ...obs('b1', 'x'), subject: 'Patient/pat-bob' }]])), 'response.malformed'],
    ];
    for (const [path, body, why] of cases) {
      script.answer(path, { body });
      const count = envoy.auditRecords().length;
      const res = await get(path, tokens.alice);
      assert.equal(res.status, 502, `${path}: ${res.text.slice(0, 200)}`);
      assert.equal(res.json.issue[0].code, 'exception');
      assert.ok(!res.text.includes('pat-bob'));
      await audited(count, path, why);
      script.forget(path);
    }
  });

  test('an answer with nothing to withhold arrives byte for byte as the upstream sent it', async () => {
    const path = '/fhir/Observation?patient=pat-alice&code=scripted-bytes';
    const body = '{ "resourceType" : "Bundle", "type":"searchset",\n  "entry": [ {"resource":{"resourceType":"Observation","id":"a1","valueQuantity":{"value":1.50E+0},"note":[{"text":"caf\\u00e9"}],"subject":{"reference":"Patient/pat-alice"}}} ] }';
    script.answer(path, { body });
    const res = await get(path, tokens.alice);
    assert.equal(res.status, 200);
    assert.equal(res.text, body);
  });

  describe('answers that cannot be read: 502 (or cut off) and the worker keeps serving', () => {
    const serving = async () => {
      // Several fresh connections: Envoy runs two workers; both must still answer.
      for (let i = 0; i < 4; i += 1) {
        const res = await get('/fhir/Patient/pat-alice', tokens.alice);
        assert.equal(res.status, 200, `request ${i} after the attack: ${res.status} ${res.text.slice(0, 200)}`);
        assert.equal(res.json.id, 'pat-alice');
      }
      assert.ok(!/worker VM lost|panicked|Wasm VM failed|wasm log.*critical/i.test(envoy.log()), envoy.log().slice(-2000));
    };
    const own = JSON.stringify(obs('obs-alice-hr', 'pat-alice'));

    test('compressed (gzip, br, deflate)', async () => {
      for (const enc of ['gzip', 'br', 'deflate']) {
        const path = `/fhir/Observation/obs-alice-hr?scripted=${enc}`;
        const zipped = enc === 'gzip' ? zlib.gzipSync(own) : enc === 'br' ? zlib.brotliCompressSync(own) : zlib.deflateSync(own);
        script.answer(path, { body: zipped, headers: { 'content-type': 'application/fhir+json', 'content-encoding': enc } });
        const count = envoy.auditRecords().length;
        const res = await get(path, tokens.alice);
        assert.equal(res.status, 502, `${enc}: ${res.text.slice(0, 200)}`);
        assert.equal(res.json.issue[0].code, 'exception');
        await audited(count, path, 'response.encoded');
        await serving();
      }
    });

    test('truncated: the upstream dies mid-body', async () => {
      const path = '/fhir/Observation/obs-alice-hr?scripted=truncated';
      script.answer(path, { body: JSON.stringify(obs('obs-alice-hr', 'pat-bob')), truncate: 40 });
      const res = await get(path, tokens.alice).catch((e) => ({ status: 0, text: String(e) }));
      assert.notEqual(res.status, 200, 'never a whole answer');
      assert.ok(!res.text.includes('pat-bob'));
      await serving();
    });

    test('chunked: a body in pieces is checked as a whole', async () => {
      const path = '/fhir/Observation/obs-alice-hr?scripted=chunked';
      const theirs = JSON.stringify(obs('obs-alice-hr', 'pat-bob'));
      script.answer(path, { chunks: theirs.match(/.{1,9}/gs) });
      const res = await get(path, tokens.alice);
      assert.equal(res.status, 403, res.text.slice(0, 200));
      const mine = '/fhir/Observation/obs-alice-hr?scripted=chunked-own';
      script.answer(mine, { chunks: own.match(/.{1,9}/gs) });
      const ok = await get(mine, tokens.alice);
      assert.equal(ok.status, 200);
      assert.equal(ok.text, own);
      await serving();
    });

    test('oversized: past fhir.maxResponseBytes', async () => {
      const path = '/fhir/Observation/obs-alice-hr?scripted=big';
      const big = JSON.stringify({ ...obs('obs-alice-hr', 'pat-alice'), note: [{ text: 'x'.repeat(MAX * 2) }] });
      for (const answer of [{ body: big }, { chunks: big.match(/.{1,1000}/gs) }]) {
        script.answer(path, answer);
        const count = envoy.auditRecords().length;
        const res = await get(path, tokens.alice);
        assert.equal(res.status, 502, res.text.slice(0, 200));
        await audited(count, path, 'response.too_large');
        await serving();
      }
    });

    test('not JSON: HTML, XML, a bare string', async () => {
      const answers = [
        ['html', { body: '<html><body>502 Bad Gateway</body></html>', headers: { 'content-type': 'text/html' } }],
        ['xml', { body: '<Observation xmlns="http://hl7.org/fhir"/>', headers: { 'content-type': 'application/fhir+xml' } }],
        ['string', { body: '"Observation"' }],
      ];
      for (const [name, answer] of answers) {
        const path = `/fhir/Observation/obs-alice-hr?scripted=${name}`;
        script.answer(path, answer);
        const count = envoy.auditRecords().length;
        const res = await get(path, tokens.alice);
        assert.equal(res.status, 502, `${name}: ${res.text.slice(0, 200)}`);
        await audited(count, path, 'response.not_fhir_json');
        await serving();
      }
    });
  });
});
