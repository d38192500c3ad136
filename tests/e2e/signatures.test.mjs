// Signatures at native speed (issue 13, item 3): in real Envoy 1.40 the filter hands RS256 and
// ES256 signatures to Envoy's own BoringSSL (foreign function `verify_signature`); the counters
// show every signature was checked there and none in Wasm, valid tokens are served, tampered
// ones refused as before.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  assertDenied, bearer, flipSignature, startStack,
} from './lib/stack.mjs';

const READ = '/fhir/Patient/pat-alice';

describe('signatures by the host', () => {
  let stack;
  before(async () => {
    stack = await startStack();
  });
  after(async () => {
    await stack?.stop();
  });

  test('RS256 and ES256 tokens are verified by Envoy, not in Wasm', async () => {
    const { envoy, idp } = stack;
    const before = await envoy.stats('fhirgate.signatures');
    const count = (s, name) => s[`wasmcustom.fhirgate.${name}`] ?? 0;
    let signatures = 0;
    for (const alg of ['RS256', 'ES256']) {
      const tok = await idp.token({ scope: 'system/*.rs', alg });
      const ok = await envoy.request(READ, { headers: bearer(tok) });
      assert.equal(ok.status, 200, `${alg}: ${ok.text.slice(0, 300)}`);
      const bad = flipSignature(tok.access_token);
      assertDenied(await envoy.request(READ, { headers: bearer(bad) }), {
        status: 401, code: 'login', error: 'invalid_token', token: bad,
      });
      signatures += 2;
    }
    const stats = await envoy.stats('fhirgate.signatures');
    assert.equal(count(stats, 'signatures_host_total') - count(before, 'signatures_host_total'), signatures,
      JSON.stringify(stats));
    assert.equal(count(stats, 'signatures_wasm_total') - count(before, 'signatures_wasm_total'), 0,
      JSON.stringify(stats));
  });
});
