// Issue 12, the request side, through real Envoy against the real FHIR router, written as the
// attacks they stop: ambiguous bodies, a body naming another resource than its URL, a second
// credential, method overrides, underscore spellings of owned headers, a body on GET, withdrawn
// IdP keys, an RSA key used with another algorithm than the one it is bound to, and query
// narrowing (the router sees the narrowed search; only the patient's resources come back).
import assert from 'node:assert/strict';
import { createPrivateKey, constants, sign } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { assertDenied, baseConfig, bearer, eventually, startStack } from './lib/stack.mjs';

const ids = (res) => (res.json?.entry ?? []).map((e) => e.resource?.id).filter(Boolean).sort();

describe('trust nothing: the request side', () => {
  let stack;
  let envoy;
  let idp;
  let fhir;
  const tokens = {};
  let setupError;
  before(async () => {
    try {
      stack = await startStack({
        config: (ctx) => baseConfig(ctx, {
          smart: { enforce: true },
          forward: { headers: { 'x-fhirgate-patient': 'patient' } },
        }),
      });
      ({ envoy, idp, fhir } = stack);
      tokens.alice = await idp.token({ scope: 'launch/patient patient/*.cruds', patient: 'pat-alice' });
    } catch (err) {
      setupError = err;
    }
  });
  after(async () => {
    await stack?.stop();
  });

  /** Sends the attack and asserts the upstream never received it. */
  async function unseen(send) {
    const before = fhir.requests.length;
    const res = await send();
    assert.equal(fhir.requests.length, before, 'the FHIR server received the request');
    return res;
  }

  const post = (path, body, headers = {}) => envoy.request(path, {
    method: 'POST',
    headers: bearer(tokens.alice, { 'content-type': 'application/fhir+json', ...headers }),
    body,
  });

  test('a create naming a patient twice with one member name: 400, never forwarded', async () => {
    if (setupError) throw setupError;
    const body = '{"resourceType":"Observation","status":"final","code":{"text":"x"},'
      + '"subject":{"reference":"Patient/pat-bob"},"subject":{"reference":"Patient/pat-alice"}}';
    const res = await unseen(() => post('/fhir/Observation', body));
    assertDenied(res, { status: 400, code: 'invalid', token: tokens.alice });
    const bundle = '{"resourceType":"Bundle","type":"batch","type":"transaction","entry":[]}';
    assertDenied(await unseen(() => post('/fhir', bundle)), { status: 400, code: 'invalid' });
    const trailing = '{"resourceType":"Observation","subject":{"reference":"Patient/pat-alice"}} {"x":1}';
    assertDenied(await unseen(() => post('/fhir/Observation', trailing)), { status: 400, code: 'invalid' });
  });

  test('PUT Patient/pat-alice whose body is pat-bob (or another type): 400, never forwarded', async () => {
    if (setupError) throw setupError;
    const put = (body) => envoy.request('/fhir/Patient/pat-alice', {
      method: 'PUT', headers: bearer(tokens.alice, { 'content-type': 'application/fhir+json' }), body,
    });
    for (const body of [
      { resourceType: 'Patient', id: 'pat-bob', active: false },
      { resourceType: 'Patient', active: false },
      { resourceType: 'Observation', id: 'pat-alice', status: 'final', code: { text: 'x' }, subject: { reference: 'Patient/pat-alice' } },
    ]) {
      assertDenied(await unseen(() => put(body)), { status: 400, code: 'invalid' });
    }
    const bob = await envoy.request('/fhir/Patient/pat-bob', { headers: bearer((await idp.token({ scope: 'system/*.rs' }))) });
    assert.equal(bob.json?.active, true, 'pat-bob unchanged');
  });

  test('a second token in the query or in a search form: 400 invalid_request, never forwarded', async () => {
    if (setupError) throw setupError;
    const other = (await idp.token({ scope: 'system/*.cruds' })).access_token;
    for (const name of ['access_token', 'ACCESS_TOKEN', 'access%5Ftoken']) {
      const withHeader = await unseen(() => envoy.request(`/fhir/Observation?patient=pat-alice&${name}=${other}`, { headers: bearer(tokens.alice) }));
      assertDenied(withHeader, { status: 400, code: 'invalid', error: 'invalid_request', token: other });
      const instead = await unseen(() => envoy.request(`/fhir/Observation?patient=pat-alice&${name}=${other}`));
      assertDenied(instead, { status: 400, code: 'invalid', error: 'invalid_request', token: other });
    }
    const form = await unseen(() => envoy.request('/fhir/Observation/_search', {
      method: 'POST',
      headers: bearer(tokens.alice, { 'content-type': 'application/x-www-form-urlencoded' }),
      body: `patient=pat-alice&access_token=${other}`,
    }));
    assertDenied(form, { status: 400, code: 'invalid', error: 'invalid_request', token: other });
  });

  test('method override headers: 400, never forwarded', async () => {
    if (setupError) throw setupError;
    for (const name of ['X-HTTP-Method-Override', 'X-HTTP-Method', 'X-Method-Override', 'x_http_method_override']) {
      const res = await unseen(() => envoy.request('/fhir/Patient/pat-alice', { headers: bearer(tokens.alice, { [name]: 'DELETE' }) }));
      assertDenied(res, { status: 400, code: 'invalid', token: tokens.alice });
    }
    const alice = await envoy.request('/fhir/Patient/pat-alice', { headers: bearer(tokens.alice) });
    assert.equal(alice.status, 200, 'pat-alice still there');
  });

  test('underscore spellings of owned headers never reach the FHIR server', async () => {
    if (setupError) throw setupError;
    const res = await envoy.request('/fhir/Patient/pat-alice', {
      headers: bearer(tokens.alice, { x_fhirgate_patient: 'pat-bob', 'X_FhirGate_Role': 'admin' }),
    });
    assert.equal(res.status, 200, res.text.slice(0, 300));
    const seen = fhir.requests.at(-1);
    assert.equal(seen.url, '/fhir/Patient/pat-alice');
    const names = Object.keys(seen.headers);
    assert.ok(!names.some((n) => n.includes('_')), `underscore header forwarded: ${names}`);
    assert.equal(seen.headers['x-fhirgate-patient'], 'pat-alice');
  });

  test('a body on GET or DELETE, and two content types: 400, never forwarded', async () => {
    if (setupError) throw setupError;
    const smuggled = '{"resourceType":"Bundle","type":"transaction"}';
    for (const method of ['GET', 'DELETE']) {
      // Node frames no body on GET/DELETE by itself: say it, by length and by chunks.
      for (const framing of [{ 'content-length': String(smuggled.length) }, { 'transfer-encoding': 'chunked' }]) {
        const res = await unseen(() => envoy.request('/fhir/Patient/pat-alice', {
          method, headers: bearer(tokens.alice, { 'content-type': 'application/fhir+json', ...framing }), body: smuggled,
        }));
        assertDenied(res, { status: 400, code: 'invalid' });
      }
    }
    const body = JSON.stringify({ resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: 'Patient/pat-alice' } });
    // Two Content-Type lines: this Envoy answers 400 itself, an empty body before any filter (the
    // filter refuses them too: tests/attacks_request.rs); one line listing two types reaches it.
    const twice = await unseen(() => envoy.request('/fhir/Observation', {
      method: 'POST',
      headers: ['authorization', `Bearer ${tokens.alice.access_token}`, 'content-type', 'application/fhir+json', 'content-type', 'application/fhir+xml', 'content-length', String(body.length)],
      body,
    }));
    assert.equal(twice.status, 400);
    const listed = await unseen(() => post('/fhir/Observation', body, { 'content-type': 'application/fhir+xml, application/fhir+json' }));
    assertDenied(listed, { status: 400, code: 'invalid', token: tokens.alice });
  });

  test('query narrowing: the FHIR server gets the search constrained to the patient, with handling=strict', async () => {
    if (setupError) throw setupError;
    const obs = await envoy.request('/fhir/Observation?category=laboratory', { headers: bearer(tokens.alice) });
    assert.equal(obs.status, 200, obs.text.slice(0, 300));
    let seen = fhir.requests.at(-1);
    assert.equal(seen.url, '/fhir/Observation?category=laboratory&patient=Patient/pat-alice');
    assert.equal(seen.headers.prefer, 'handling=strict');
    assert.deepEqual(ids(obs), ['obs-alice-hba1c']);
    const patients = await envoy.request('/fhir/Patient?gender=female', { headers: bearer(tokens.alice, { prefer: 'return=representation, handling=lenient' }) });
    assert.equal(patients.status, 200, patients.text.slice(0, 300));
    seen = fhir.requests.at(-1);
    assert.equal(seen.url, '/fhir/Patient?gender=female&_id=pat-alice');
    assert.equal(seen.headers.prefer, 'return=representation, handling=strict');
    assert.deepEqual(ids(patients), ['pat-alice'], 'pat-carol is female too, but not the patient');
    // Naming another patient is refused, not rewritten.
    const bob = await unseen(() => envoy.request('/fhir/Observation?patient=pat-bob', { headers: bearer(tokens.alice) }));
    assertDenied(bob, { status: 403, code: 'forbidden' });
  });
});

describe('trust nothing: the IdP side', () => {
  let stack;
  let setupError;
  before(async () => {
    try {
      stack = await startStack({
        config: (ctx) => baseConfig(ctx, {
          provider: {
            algorithms: ['RS256', 'PS256', 'ES256'],
            jwks: {
              remote: {
                cluster: 'idp', authority: `127.0.0.1:${ctx.idp.port}`, path: '/jwks', refresh: '1s', timeout: '2s', minRefetchInterval: '1s',
              },
            },
          },
        }),
      });
    } catch (err) {
      setupError = err;
    }
  });
  after(async () => {
    await stack?.stop();
  });

  test('keys the IdP withdrew stop verifying on the next refresh, cached tokens included', async () => {
    if (setupError) throw setupError;
    const { envoy, idp } = stack;
    const old = await idp.token({ scope: 'system/*.rs' });
    const read = (tok) => envoy.request('/fhir/Patient/pat-alice', { headers: bearer(tok) });
    assert.equal((await read(old)).status, 200, 'verified (and cached)');
    await idp.rotateKeys();
    const fresh = await idp.token({ scope: 'system/*.rs' });
    const refused = await eventually(async () => (await read(old)).status === 401);
    assert.ok(refused, 'the withdrawn key still verifies');
    assertDenied(await read(old), { status: 401, code: 'login', error: 'invalid_token', token: old });
    assert.equal((await read(fresh)).status, 200);
  });

  test('an RSA key published without alg verifies RS256 only: the same key signing PS256 is refused', async () => {
    if (setupError) throw setupError;
    const { envoy, idp, audience } = stack;
    // The IdP's RSA key, published without its alg (a JWKS served by the IdP).
    const rsa = idp.keys.find((k) => k.kty === 'RSA');
    delete rsa.alg;
    await idp.rotateKeys(idp.keys);
    const now = Math.floor(Date.now() / 1000);
    const claims = { iss: idp.issuer, aud: audience, sub: 'svc', client_id: 'svc', scope: 'system/*.rs', iat: now, exp: now + 120, jti: `j-${now}` };
    const key = createPrivateKey({ key: rsa, format: 'jwk' });
    const jwt = (alg) => {
      const head = Buffer.from(JSON.stringify({ alg, kid: rsa.kid, typ: 'at+jwt' })).toString('base64url');
      const body = Buffer.from(JSON.stringify(claims)).toString('base64url');
      const input = Buffer.from(`${head}.${body}`);
      const sig = alg === 'PS256'
        ? sign('sha256', input, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 })
        : sign('sha256', input, key);
      return `${head}.${body}.${sig.toString('base64url')}`;
    };
    const read = (tok) => envoy.request('/fhir/Patient/pat-alice', { headers: bearer(tok) });
    const rs = await eventually(async () => (await read(jwt('RS256'))).status === 200);
    assert.ok(rs, 'RS256 with the unlabelled key');
    const ps = await read(jwt('PS256'));
    assertDenied(ps, { status: 401, code: 'login', error: 'invalid_token' });
  });
});
