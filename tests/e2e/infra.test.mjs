// The test infrastructure itself, without fhirgate: the IdP issues real, verifiable tokens, the
// FHIR router answers, and Envoy proxies to it. When these fail, the other suites cannot mean much.
import assert from 'node:assert/strict';
import { createPublicKey, verify } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import fs from 'node:fs';
import { REPO, RUN_DIR, validateConfig, wasmBuilt } from './lib/envoy.mjs';
import { makePki } from './lib/tls.mjs';
import { bearer, decodeJwt, flipSignature, startStack } from './lib/stack.mjs';

/** Verifies a compact JWS against a JWKS with node:crypto (independent of the filter). */
function verifyJws(token, jwks) {
  const { header } = decodeJwt(token);
  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  assert.ok(jwk, `kid ${header.kid} is published`);
  const [h, p, s] = token.split('.');
  const key = createPublicKey({ key: jwk, format: 'jwk' });
  const data = Buffer.from(`${h}.${p}`);
  const sig = Buffer.from(s, 'base64url');
  if (header.alg === 'RS256') return verify('sha256', data, key, sig);
  if (header.alg === 'ES256') return verify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, sig);
  throw new Error(`unexpected alg ${header.alg}`);
}

describe('infrastructure (no filter)', () => {
  let stack;
  before(async () => {
    stack = await startStack({ config: null, fhirFixtures: ['compartment-search'] });
  });
  after(async () => {
    await stack?.stop();
  });

  test('the IdP issues RS256 and ES256 JWT access tokens with the requested claims', async () => {
    const jwks = (await stack.idp.get('/jwks')).json;
    assert.deepEqual(jwks.keys.map((k) => k.alg).sort(), ['ES256', 'RS256']);
    for (const alg of ['RS256', 'ES256']) {
      const tok = await stack.idp.token({
        alg, scope: 'patient/*.rs launch/patient', patient: 'pat-alice', fhirUser: 'Patient/pat-alice',
        claims: { acr: 'urn:example:aal2' },
      });
      const { header, payload } = decodeJwt(tok.access_token);
      assert.equal(header.alg, alg);
      assert.equal(header.typ, 'at+jwt');
      assert.equal(payload.iss, stack.idp.issuer);
      assert.equal(payload.aud, stack.audience);
      assert.equal(payload.scope, 'patient/*.rs launch/patient');
      assert.equal(payload.patient, 'pat-alice');
      assert.equal(payload.fhirUser, 'Patient/pat-alice');
      assert.equal(payload.acr, 'urn:example:aal2');
      assert.ok(payload.exp > payload.iat);
      assert.ok(verifyJws(tok.access_token, jwks), 'signature verifies against the JWKS');
    }
  });

  test('opaque tokens introspect as active until revoked', async () => {
    const tok = await stack.idp.token({ format: 'opaque', scope: 'system/*.rs', patient: 'pat-bob' });
    assert.equal(tok.access_token.split('.').length, 1);
    const active = await stack.idp.introspect(tok.access_token);
    assert.equal(active.active, true);
    assert.equal(active.aud, stack.audience);
    assert.equal(active.patient, 'pat-bob');
    assert.equal(active.scope, 'system/*.rs');
    await stack.idp.revoke(tok);
    assert.deepEqual(await stack.idp.introspect(tok.access_token), { active: false });
  });

  test('JWT access tokens introspect too (for mode always) until revoked', async () => {
    const tok = await stack.idp.token({ scope: 'system/*.rs', patient: 'pat-carol', alg: 'ES256' });
    const active = await stack.idp.introspect(tok.access_token);
    assert.equal(active.active, true);
    assert.equal(active.patient, 'pat-carol');
    assert.equal(active.aud, stack.audience);
    assert.equal(active.iss, stack.idp.issuer);
    const other = await stack.idp.token({ scope: 'system/*.rs' });
    await assert.rejects(stack.idp.revoke({ ...tok, clientSecret: 'wrong' }));
    await stack.idp.revoke(other);
    assert.equal((await stack.idp.introspect(tok.access_token)).active, true, 'revoking another token');
    await stack.idp.revoke(tok);
    assert.deepEqual(await stack.idp.introspect(tok.access_token), { active: false });
    const forged = `${tok.access_token.slice(0, -6)}AAAAAA`;
    assert.deepEqual(await stack.idp.introspect(forged), { active: false });
  });

  test('key rotation publishes new kids; stop/start keeps issued opaque tokens', async () => {
    const tok = await stack.idp.token({ format: 'opaque' });
    const before = stack.idp.kids();
    await stack.idp.rotateKeys();
    const now = stack.idp.kids();
    assert.equal(now.filter((k) => before.includes(k)).length, 0);
    const jwks = (await stack.idp.get('/jwks')).json;
    assert.deepEqual(jwks.keys.map((k) => k.kid).sort(), [...now].sort());
    await stack.idp.stop();
    await assert.rejects(stack.idp.get('/jwks'));
    await stack.idp.start();
    assert.equal((await stack.idp.introspect(tok.access_token)).active, true);
  });

  test('the FHIR router answers through Envoy', async () => {
    const read = await stack.envoy.request('/fhir/Patient/pat-alice');
    assert.equal(read.status, 200);
    assert.equal(read.json.id, 'pat-alice');
    const search = await stack.envoy.request('/fhir/Observation?patient=Patient/pat-alice&category=laboratory');
    assert.equal(search.status, 200);
    assert.deepEqual(search.json.entry.map((e) => e.resource.id), ['obs-alice-hba1c']);
    // The router matches a reference parameter as Type/id only, and nothing rewrites it.
    const bare = await stack.envoy.request('/fhir/Observation?patient=pat-alice');
    assert.equal(bare.status, 200);
    assert.deepEqual(bare.json.entry ?? [], [], 'the router matched a bare id: a rewrite is back');
    assert.equal(search.headers['x-upstream-fixture'], undefined, 'a search answered by the router');
    // The compartment search is a named fixture (the router has none), and says so.
    const compartment = await stack.envoy.request('/fhir/Patient/pat-bob/Observation');
    assert.equal(compartment.headers['x-upstream-fixture'], 'compartment-search');
    assert.deepEqual(compartment.json.entry.map((e) => e.resource.id).sort(), ['obs-bob-bp', 'obs-bob-hiv']);
    const missing = await stack.envoy.request('/fhir/Patient/nobody');
    assert.equal(missing.status, 404);
  });

  test('the upstream reports the x-fhirgate-* headers it received', async () => {
    const res = await stack.envoy.request('/fhir/Patient/pat-alice', { headers: { 'x-fhirgate-patient': 'pat-bob' } });
    assert.equal(res.headers['x-upstream-saw-fhirgate'], 'x-fhirgate-patient');
    assert.equal(stack.fhir.requests.at(-1).headers['x-fhirgate-patient'], 'pat-bob');
    const plain = await stack.envoy.request('/fhir/Patient/pat-alice');
    assert.equal(plain.headers['x-upstream-saw-fhirgate'], '-');
    assert.equal(plain.headers['x-upstream-saw-authorization'], 'no');
  });

  test('envoy/envoy.yaml is a valid bootstrap', { skip: !wasmBuilt() && 'fhirgate.wasm not built' }, () => {
    // Its TLS listener reads envoy/certs/ (made by `make envoy-certs`): validate a copy that points
    // at certificates made here instead.
    const pki = makePki();
    try {
      const yaml = fs.readFileSync(path.join(REPO, 'envoy', 'envoy.yaml'), 'utf8');
      assert.ok(yaml.includes('envoy/certs/server.pem'), 'the example has a TLS listener');
      fs.mkdirSync(RUN_DIR, { recursive: true });
      const copy = path.join(RUN_DIR, `envoy-example-${process.pid}.yaml`);
      fs.writeFileSync(copy, yaml.replaceAll('envoy/certs/', `${pki.dir}/`));
      const { ok, output } = validateConfig(copy);
      assert.ok(ok, output);
    } finally {
      pki.remove();
    }
  });
});

describe('infrastructure: Envoy\'s own jwt_authn accepts the IdP\'s tokens through the idp cluster', () => {
  let stack;
  before(async () => {
    stack = await startStack({
      config: null,
      extraFilters: ({ idp, audience }) => [{
        name: 'envoy.filters.http.jwt_authn',
        typed_config: {
          '@type': 'type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication',
          providers: {
            main: {
              issuer: idp.issuer,
              audiences: [audience],
              remote_jwks: { http_uri: { uri: `${idp.url}/jwks`, cluster: 'idp', timeout: '2s' }, cache_duration: '60s' },
            },
          },
          rules: [{ match: { prefix: '/fhir' }, requires: { provider_name: 'main' } }],
        },
      }],
    });
  });
  after(async () => {
    await stack?.stop();
  });

  test('RS256 and ES256 allowed, no token and a forged signature rejected', async () => {
    for (const alg of ['RS256', 'ES256']) {
      const tok = await stack.idp.token({ alg, scope: 'system/*.rs' });
      const res = await stack.envoy.request('/fhir/Patient/pat-alice', { headers: bearer(tok) });
      assert.equal(res.status, 200, res.text);
      const forged = await stack.envoy.request('/fhir/Patient/pat-alice', { headers: bearer(flipSignature(tok.access_token)) });
      assert.equal(forged.status, 401);
    }
    assert.equal((await stack.envoy.request('/fhir/Patient/pat-alice')).status, 401);
    assert.ok(stack.idp.jwksFetches >= 1);
  });
});
