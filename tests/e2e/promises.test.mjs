// README promises only Envoy can show (issue 17, item 2; tests/PROMISES.md maps them all):
// a checked response that is compressed or over `fhir.maxResponseBytes` is replaced by a 502
// before anything reaches the client; `fhir.publicDiscovery: false` and a custom `realm`.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { assertDenied, baseConfig, bearer, parseChallenge, startStack } from './lib/stack.mjs';

describe('README promises in real Envoy', () => {
  let stack;
  let envoy;
  let alice;
  before(async () => {
    stack = await startStack({
      config: (ctx) => baseConfig(ctx, {
        realm: 'hospital-north',
        fhir: { basePath: '/fhir', publicDiscovery: false, maxResponseBytes: 1024 },
      }),
      // The router never compresses: a named fixture gzips its answer on request (lib/fhir.mjs).
      fhirFixtures: ['gzip-responses'],
    });
    ({ envoy } = stack);
    alice = await stack.idp.token({ scope: 'launch/patient patient/*.rs', patient: 'pat-alice' });
  });
  after(async () => {
    await stack?.stop();
  });

  test('a compressed answer that must be checked is replaced by a 502 response.encoded', async () => {
    const plain = await envoy.request('/fhir/Patient/pat-alice', { headers: bearer(alice) });
    assert.equal(plain.status, 200, plain.text.slice(0, 300));
    const res = await envoy.request('/fhir/Patient/pat-alice', { headers: bearer(alice, { 'x-fixture-gzip': '1' }) });
    assert.equal(res.status, 502, res.text.slice(0, 300));
    assert.equal(res.headers['content-encoding'], undefined, 'the compressed body went out');
    assert.equal(res.headers['x-upstream-fixture'], undefined, 'upstream headers went out');
    assert.equal(res.json?.issue?.[0]?.code, 'exception');
    assert.equal(res.json?.issue?.[0]?.details?.text, 'response.encoded');
    assert.equal(res.headers['cache-control'], 'no-store');
    assert.ok(!res.text.includes('Anders'), 'patient data in the answer');
    assert.equal(stack.fhir.requests.at(-1).headers['x-fixture-gzip'], '1', 'the upstream did answer');
  });

  test('an answer over fhir.maxResponseBytes is replaced by a 502 response.too_large', async () => {
    const direct = await fetch(`${stack.fhir.url}/fhir/Observation?patient=Patient/pat-alice`);
    const size = (await direct.arrayBuffer()).byteLength;
    assert.ok(size > 1024, `the search is ${size} bytes, not over the limit`);
    const res = await envoy.request('/fhir/Observation?patient=Patient/pat-alice', { headers: bearer(alice) });
    assert.equal(res.status, 502, res.text.slice(0, 300));
    assert.equal(res.json?.issue?.[0]?.code, 'exception');
    assert.equal(res.json?.issue?.[0]?.details?.text, 'response.too_large');
    assert.ok(!res.text.includes('obs-alice'), 'entries in the answer');
  });

  test('publicDiscovery false: metadata needs a token; the challenge names the configured realm', async () => {
    const res = await envoy.request('/fhir/metadata');
    assertDenied(res, { status: 401, code: 'login', error: null, reason: 'token.missing' });
    assert.equal(parseChallenge(res.headers['www-authenticate']).params.realm, 'hospital-north');
    const withToken = await envoy.request('/fhir/metadata', { headers: bearer(alice) });
    assert.equal(withToken.status, 200, withToken.text.slice(0, 300));
    assert.equal(withToken.json.resourceType, 'CapabilityStatement');
  });
});
