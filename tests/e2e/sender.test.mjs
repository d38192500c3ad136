// Sender-constrained tokens (contract §5) through real Envoy + fhirgate.wasm, with tokens the real
// oidc-provider binds to the client: DPoP (RFC 9449, the client's proofs made with node:crypto)
// and certificate-bound tokens (RFC 8705, a real TLS client certificate from a test CA made with
// openssl at test time, validated by Envoy's TLS listener).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { makeDpopKey, proof } from './lib/dpop.mjs';
import { makePki } from './lib/tls.mjs';
import {
  assertDenied, assertNoToken, baseConfig, bearer, decodeJwt, eventually, introspectionConfig, parseChallenge, startStack,
} from './lib/stack.mjs';

const READ = '/fhir/Patient/pat-alice';
const SCOPE = 'system/*.rs';
const ALGS = 'ES256 ES384 RS256 PS256 EdDSA';

/** `Authorization: DPoP <token>` and the proof(s). */
function dpopHeaders(tok, proofs) {
  return { authorization: `DPoP ${tok.access_token ?? tok}`, dpop: proofs };
}

function reasonOf(res) {
  return res.json?.issue?.[0]?.details?.text;
}

/** A 401 with a `DPoP` challenge: `error`, the accepted `algs`, OperationOutcome `login`. */
function assertDpopDenied(res, { error, reason, token }) {
  assert.equal(res.status, 401, res.text.slice(0, 300));
  assert.match(res.headers['content-type'] ?? '', /^application\/fhir\+json/);
  assert.equal(res.json?.issue?.[0]?.code, 'login');
  assert.equal(reasonOf(res), reason, res.text.slice(0, 300));
  const ch = parseChallenge(res.headers['www-authenticate']);
  assert.equal(ch.scheme, 'DPoP');
  assert.equal(ch.params.error, error);
  assert.equal(ch.params.algs, ALGS);
  assert.equal(res.headers['x-upstream-saw-fhirgate'], undefined, 'the request reached the upstream');
  if (token) assertNoToken(res, token);
}

/** A 401 with a `Bearer error="invalid_token"` challenge and this reason. */
function assertBearerDenied(res, reason, token) {
  assertDenied(res, { status: 401, code: 'login', error: 'invalid_token', token });
  assert.equal(reasonOf(res), reason, res.text.slice(0, 300));
}

describe('DPoP-bound tokens from oidc-provider', () => {
  let stack;
  let envoy;
  let idp;
  let pki;
  let url;
  before(async () => {
    pki = makePki();
    stack = await startStack({
      pki,
      config: (ctx) => baseConfig(ctx, { provider: { introspection: introspectionConfig(ctx.idp) } }),
    });
    ({ envoy, idp } = stack);
    url = (path) => `${envoy.url}${path}`;
  });
  after(async () => {
    await stack?.stop();
    pki?.remove();
  });

  test('the IdP binds the token to the client key and Envoy accepts it with a proof', async () => {
    const key = makeDpopKey();
    const tok = await idp.token({ scope: SCOPE, dpop: key });
    assert.equal(tok.token_type, 'DPoP');
    assert.equal(decodeJwt(tok.access_token).payload.cnf.jkt, key.thumbprint);
    const p = proof(key, { htm: 'GET', htu: url(READ), accessToken: tok.access_token });
    const res = await envoy.request(READ, { headers: dpopHeaders(tok, p) });
    assert.equal(res.status, 200, res.text.slice(0, 300));
    assert.equal(res.json.id, 'pat-alice');
    const record = await eventually(() => envoy.auditRecords().find((r) => r.binding === 'dpop' && r.outcome === 'allow'));
    assert.ok(record, 'an audit record with binding dpop');
    assert.ok(!envoy.log().includes(p.split('.')[2]), 'the proof is not logged');
  });

  test('an EdDSA proof key works too', async () => {
    const key = makeDpopKey('EdDSA');
    const tok = await idp.token({ scope: SCOPE, dpop: key });
    const p = proof(key, { htm: 'GET', htu: url(READ), accessToken: tok.access_token });
    const res = await envoy.request(READ, { headers: dpopHeaders(tok, p) });
    assert.equal(res.status, 200, res.text.slice(0, 300));
  });

  test('the stolen token as a bearer token: 401 DPoP invalid_token', async () => {
    const key = makeDpopKey();
    const tok = await idp.token({ scope: SCOPE, dpop: key });
    const res = await envoy.request(READ, { headers: bearer(tok) });
    assertDpopDenied(res, { error: 'invalid_token', reason: 'dpop.bound_as_bearer', token: tok });
  });

  test("the stolen token with the thief's own key: dpop.jkt", async () => {
    const tok = await idp.token({ scope: SCOPE, dpop: makeDpopKey() });
    const thief = makeDpopKey();
    const p = proof(thief, { htm: 'GET', htu: url(READ), accessToken: tok.access_token });
    const res = await envoy.request(READ, { headers: dpopHeaders(tok, p) });
    assertDpopDenied(res, { error: 'invalid_token', reason: 'dpop.jkt', token: tok });
  });

  test('a replayed proof is refused every time, whichever worker takes the connection', async () => {
    const key = makeDpopKey();
    const tok = await idp.token({ scope: SCOPE, dpop: key });
    const p = proof(key, { htm: 'GET', htu: url(READ), accessToken: tok.access_token });
    const first = await envoy.request(READ, { headers: dpopHeaders(tok, p) });
    assert.equal(first.status, 200, first.text.slice(0, 300));
    // Each request is a new connection; Envoy runs two workers.
    const replays = await Promise.all(Array.from({ length: 12 }, () => envoy.request(READ, { headers: dpopHeaders(tok, p) })));
    for (const res of replays) assertDpopDenied(res, { error: 'invalid_dpop_proof', reason: 'dpop.replay' });
    const stats = await envoy.stats('fhirgate.');
    assert.ok((stats['wasmcustom.fhirgate.decisions.deny.dpop_replay'] ?? 0) >= 12, JSON.stringify(stats).slice(0, 400));
    assert.ok((stats['wasmcustom.fhirgate.dpop_proofs_accepted_total'] ?? 0) >= 1);
  });

  test('a proof for another URL or method is refused', async () => {
    const key = makeDpopKey();
    const tok = await idp.token({ scope: SCOPE, dpop: key });
    const at = tok.access_token;
    const cases = [
      [proof(key, { htm: 'GET', htu: url('/fhir/Patient/pat-bob'), accessToken: at }), 'dpop.htu'],
      [proof(key, { htm: 'GET', htu: `https://127.0.0.1:${envoy.listenPort}${READ}`, accessToken: at }), 'dpop.htu'],
      [proof(key, { htm: 'DELETE', htu: url(READ), accessToken: at }), 'dpop.htm'],
    ];
    for (const [p, reason] of cases) {
      const res = await envoy.request(READ, { headers: dpopHeaders(tok, p) });
      assertDpopDenied(res, { error: 'invalid_dpop_proof', reason });
    }
    // x-forwarded-proto does not make a plaintext request https.
    const p = proof(key, { htm: 'GET', htu: `https://127.0.0.1:${envoy.listenPort}${READ}`, accessToken: at });
    const res = await envoy.request(READ, { headers: { ...dpopHeaders(tok, p), 'x-forwarded-proto': 'https' } });
    assertDpopDenied(res, { error: 'invalid_dpop_proof', reason: 'dpop.htu' });
    // The query string is not part of htu; the host's case and the default port do not matter.
    const q = proof(key, { htm: 'GET', htu: `HTTP://127.0.0.1:${envoy.listenPort}${READ}?_pretty=true`, accessToken: at });
    const ok = await envoy.request(`${READ}?_format=json`, { headers: dpopHeaders(tok, q) });
    assert.equal(ok.status, 200, ok.text.slice(0, 300));
  });

  test('over TLS the proof names the https URL', async () => {
    const key = makeDpopKey();
    const tok = await idp.token({ scope: SCOPE, dpop: key });
    const https = `${envoy.tlsUrl}${READ}`;
    const ok = await envoy.requestTls(READ, {
      headers: dpopHeaders(tok, proof(key, { htm: 'GET', htu: https, accessToken: tok.access_token })),
    });
    assert.equal(ok.status, 200, ok.text.slice(0, 300));
    const wrong = await envoy.requestTls(READ, {
      headers: dpopHeaders(tok, proof(key, { htm: 'GET', htu: https.replace('https:', 'http:'), accessToken: tok.access_token })),
    });
    assertDpopDenied(wrong, { error: 'invalid_dpop_proof', reason: 'dpop.htu' });
  });

  test('stale and future proofs are refused', async () => {
    const key = makeDpopKey();
    const tok = await idp.token({ scope: SCOPE, dpop: key });
    const now = Math.floor(Date.now() / 1000);
    for (const iat of [now - 120, now + 120]) {
      const p = proof(key, { htm: 'GET', htu: url(READ), accessToken: tok.access_token, iat });
      const res = await envoy.request(READ, { headers: dpopHeaders(tok, p) });
      assertDpopDenied(res, { error: 'invalid_dpop_proof', reason: 'dpop.iat' });
    }
  });

  test('unsigned and HMAC proofs, private keys in the jwk, and two proofs are refused', async () => {
    const key = makeDpopKey();
    const tok = await idp.token({ scope: SCOPE, dpop: key });
    const at = tok.access_token;
    const signed = proof(key, { htm: 'GET', htu: url(READ), accessToken: at, header: { alg: 'none' } });
    const unsigned = `${signed.split('.').slice(0, 2).join('.')}.`;
    const hmac = proof(key, { htm: 'GET', htu: url(READ), accessToken: at, header: { alg: 'HS256' } });
    const privateJwk = proof(key, { htm: 'GET', htu: url(READ), accessToken: at, header: { jwk: key.privateJwk } });
    for (const [p, reason] of [[unsigned, 'dpop.alg'], [hmac, 'dpop.alg'], [privateJwk, 'dpop.jwk'], ['not.a.proof', 'dpop.malformed']]) {
      const res = await envoy.request(READ, { headers: dpopHeaders(tok, p) });
      assertDpopDenied(res, { error: 'invalid_dpop_proof', reason });
    }
    const a = proof(key, { htm: 'GET', htu: url(READ), accessToken: at });
    const b = proof(key, { htm: 'GET', htu: url(READ), accessToken: at });
    const two = await envoy.request(READ, { headers: dpopHeaders(tok, [a, b]) });
    assertDpopDenied(two, { error: 'invalid_dpop_proof', reason: 'dpop.multiple' });
    const none = await envoy.request(READ, { headers: { authorization: `DPoP ${at}` } });
    assertDpopDenied(none, { error: 'invalid_dpop_proof', reason: 'dpop.missing' });
    // Bearer and DPoP credentials together: a malformed request.
    const both = await envoy.request(READ, { headers: { authorization: [`DPoP ${at}`, `Bearer ${at}`], dpop: a } });
    assertDenied(both, { status: 400, code: 'invalid', error: 'invalid_request', token: tok });
    // None of the refused proofs was consumed.
    const ok = await envoy.request(READ, { headers: dpopHeaders(tok, a) });
    assert.equal(ok.status, 200, ok.text.slice(0, 300));
  });

  test('an opaque DPoP-bound token: the binding comes from introspection', async () => {
    const key = makeDpopKey();
    const tok = await idp.token({ scope: SCOPE, dpop: key, format: 'opaque' });
    assert.equal(tok.access_token.split('.').length, 1, 'opaque');
    assert.equal((await idp.introspect(tok.access_token)).cnf?.jkt, key.thumbprint);
    const asBearer = await envoy.request(READ, { headers: bearer(tok) });
    assertDpopDenied(asBearer, { error: 'invalid_token', reason: 'dpop.bound_as_bearer', token: tok });
    const p = proof(key, { htm: 'GET', htu: url(READ), accessToken: tok.access_token });
    const res = await envoy.request(READ, { headers: dpopHeaders(tok, p) });
    assert.equal(res.status, 200, res.text.slice(0, 300));
  });

  test('a certificate-bound token works with its client certificate only', async () => {
    const tok = await idp.token({ scope: SCOPE, mtls: pki.alice });
    assert.equal(decodeJwt(tok.access_token).payload.cnf['x5t#S256'], pki.alice.x5t);
    const ok = await envoy.requestTls(READ, { headers: bearer(tok), cert: pki.alice.cert, key: pki.alice.key });
    assert.equal(ok.status, 200, ok.text.slice(0, 300));
    const record = await eventually(() => envoy.auditRecords().find((r) => r.binding === 'mtls' && r.outcome === 'allow'));
    assert.ok(record, 'an audit record with binding mtls');
    assert.ok(!envoy.log().includes(pki.alice.x5t) && !envoy.log().includes(pki.alice.sha256Hex), 'no thumbprint logged');
    // A certificate from the same CA, but another client's.
    const other = await envoy.requestTls(READ, { headers: bearer(tok), cert: pki.mallory.cert, key: pki.mallory.key });
    assertBearerDenied(other, 'mtls.mismatch', tok);
    // TLS without a client certificate, plaintext, and a forwarded certificate header.
    assertBearerDenied(await envoy.requestTls(READ, { headers: bearer(tok) }), 'mtls.missing', tok);
    assertBearerDenied(await envoy.request(READ, { headers: bearer(tok) }), 'mtls.missing', tok);
    const xfcc = `Hash=${pki.alice.sha256Hex};Subject="CN=alice-device"`;
    assertBearerDenied(await envoy.request(READ, { headers: bearer(tok, { 'x-forwarded-client-cert': xfcc }) }), 'mtls.missing', tok);
  });

  test('a client certificate from another CA never gets through the TLS handshake', async () => {
    const tok = await idp.token({ scope: SCOPE, mtls: pki.alice });
    await assert.rejects(envoy.requestTls(READ, { headers: bearer(tok), cert: pki.rogue.cert, key: pki.rogue.key }));
  });

  test('an opaque certificate-bound token: the binding comes from introspection', async () => {
    const tok = await idp.token({ scope: SCOPE, mtls: pki.alice, format: 'opaque' });
    assert.equal((await idp.introspect(tok.access_token)).cnf?.['x5t#S256'], pki.alice.x5t);
    const bad = await envoy.requestTls(READ, { headers: bearer(tok), cert: pki.mallory.cert, key: pki.mallory.key });
    assertBearerDenied(bad, 'mtls.mismatch', tok);
    const ok = await envoy.requestTls(READ, { headers: bearer(tok), cert: pki.alice.cert, key: pki.alice.key });
    assert.equal(ok.status, 200, ok.text.slice(0, 300));
  });

  test('unbound tokens still pass as bearer tokens (dpop and mtls: allowed)', async () => {
    const tok = await idp.token({ scope: SCOPE });
    const res = await envoy.request(READ, { headers: bearer(tok) });
    assert.equal(res.status, 200, res.text.slice(0, 300));
    const key = makeDpopKey();
    const p = proof(key, { htm: 'GET', htu: url(READ), accessToken: tok.access_token });
    assertDpopDenied(await envoy.request(READ, { headers: dpopHeaders(tok, p) }), { error: 'invalid_token', reason: 'dpop.unbound' });
  });
});

describe('senderConstraint dpop: required, mtls: off, and fhir.publicBaseUrl', () => {
  let stack;
  let envoy;
  let idp;
  let pki;
  const PUBLIC = 'https://fhir.example.org/api';
  before(async () => {
    pki = makePki();
    stack = await startStack({
      pki,
      config: (ctx) => baseConfig(ctx, {
        fhir: { basePath: '/fhir', publicBaseUrl: PUBLIC },
        provider: { senderConstraint: { dpop: 'required', mtls: 'off', dpopMaxAge: '10s' } },
      }),
    });
    ({ envoy, idp } = stack);
  });
  after(async () => {
    await stack?.stop();
    pki?.remove();
  });

  test('an unbound bearer token is refused where DPoP is required', async () => {
    const tok = await idp.token({ scope: SCOPE });
    assertDpopDenied(await envoy.request(READ, { headers: bearer(tok) }), { error: 'invalid_token', reason: 'dpop.required', token: tok });
  });

  test('the proof names the public URL, not the one the proxy was addressed with', async () => {
    const key = makeDpopKey();
    const tok = await idp.token({ scope: SCOPE, dpop: key });
    const good = proof(key, { htm: 'GET', htu: `${PUBLIC}/Patient/pat-alice`, accessToken: tok.access_token });
    const res = await envoy.request(READ, { headers: dpopHeaders(tok, good) });
    assert.equal(res.status, 200, res.text.slice(0, 300));
    const local = proof(key, { htm: 'GET', htu: `${envoy.url}${READ}`, accessToken: tok.access_token });
    assertDpopDenied(await envoy.request(READ, { headers: dpopHeaders(tok, local) }), { error: 'invalid_dpop_proof', reason: 'dpop.htu' });
  });

  test('dpopMaxAge bounds the age of a proof', async () => {
    const key = makeDpopKey();
    const tok = await idp.token({ scope: SCOPE, dpop: key });
    const iat = Math.floor(Date.now() / 1000) - 20;
    const p = proof(key, { htm: 'GET', htu: `${PUBLIC}/Patient/pat-alice`, accessToken: tok.access_token, iat });
    assertDpopDenied(await envoy.request(READ, { headers: dpopHeaders(tok, p) }), { error: 'invalid_dpop_proof', reason: 'dpop.iat' });
  });

  test('mtls: off refuses a certificate-bound token even with its certificate', async () => {
    const tok = await idp.token({ scope: SCOPE, mtls: pki.alice });
    const res = await envoy.requestTls(READ, { headers: bearer(tok), cert: pki.alice.cert, key: pki.alice.key });
    assertBearerDenied(res, 'mtls.disabled', tok);
  });
});

describe('senderConstraint dpop: off', () => {
  let stack;
  before(async () => {
    stack = await startStack({ config: (ctx) => baseConfig(ctx, { provider: { senderConstraint: { dpop: 'off' } } }) });
  });
  after(async () => {
    await stack?.stop();
  });

  test('a DPoP-bound token is refused, never downgraded to a bearer token', async () => {
    const { envoy, idp } = stack;
    const key = makeDpopKey();
    const tok = await idp.token({ scope: SCOPE, dpop: key });
    const p = proof(key, { htm: 'GET', htu: `${envoy.url}${READ}`, accessToken: tok.access_token });
    assertBearerDenied(await envoy.request(READ, { headers: dpopHeaders(tok, p) }), 'dpop.disabled', tok);
    assertBearerDenied(await envoy.request(READ, { headers: bearer(tok) }), 'dpop.disabled', tok);
    const plain = await idp.token({ scope: SCOPE });
    const res = await envoy.request(READ, { headers: bearer(plain) });
    assert.equal(res.status, 200, res.text.slice(0, 300));
  });
});
