// Bearer-token validation through real Envoy + fhirgate.wasm, with tokens from a real OpenID
// provider (contract §1 and §3; issue "fhirgate core", item 10).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { startIdp } from './lib/idp.mjs';
import {
  assertDenied, assertNoToken, baseConfig, bearer, decodeJwt, eventually, flipSignature, startStack,
} from './lib/stack.mjs';

const READ = '/fhir/Patient/pat-alice';
// Token validation is under test here, so tokens carry a scope that SMART would allow anyway.
const SCOPE = 'system/*.rs';

describe('bearer tokens', () => {
  let stack;
  let envoy;
  let idp;
  before(async () => {
    stack = await startStack();
    ({ envoy, idp } = stack);
  });
  after(async () => {
    await stack?.stop();
  });

  test('an RS256 token from the IdP reaches the FHIR server', async () => {
    const tok = await idp.token({ scope: SCOPE, alg: 'RS256' });
    const res = await envoy.request(READ, { headers: bearer(tok) });
    assert.equal(res.status, 200, res.text.slice(0, 300));
    assert.equal(res.json.resourceType, 'Patient');
    assert.equal(res.json.id, 'pat-alice');
    assertNoToken(res, tok);
  });

  test('an ES256 token is accepted too', async () => {
    const tok = await idp.token({ scope: SCOPE, alg: 'ES256' });
    assert.equal(decodeJwt(tok.access_token).header.alg, 'ES256');
    const res = await envoy.request(READ, { headers: bearer(tok) });
    assert.equal(res.status, 200, res.text.slice(0, 300));
    assert.equal(res.json.id, 'pat-alice');
  });

  test('the key set was fetched from the IdP through the idp cluster', async () => {
    assert.ok(idp.jwksFetches >= 1, 'the IdP served /jwks');
    const stats = await envoy.stats('cluster.idp.');
    assert.ok((stats['cluster.idp.upstream_rq_total'] ?? 0) >= 1, JSON.stringify(stats).slice(0, 300));
  });

  test('the Bearer scheme is case-insensitive', async () => {
    const tok = await idp.token({ scope: SCOPE });
    const res = await envoy.request(READ, { headers: { authorization: `bearer ${tok.access_token}` } });
    assert.equal(res.status, 200, res.text.slice(0, 300));
  });

  test('no credentials: 401, Bearer realm without error, OperationOutcome login', async () => {
    const res = await envoy.request(READ);
    assertDenied(res, { status: 401, code: 'login', error: null });
  });

  test('a token in the query string is a second method (400 invalid_request); another scheme counts as no credentials', async () => {
    const tok = await idp.token({ scope: SCOPE });
    const query = await envoy.request(`${READ}?access_token=${tok.access_token}`);
    assertDenied(query, { status: 400, code: 'invalid', error: 'invalid_request', token: tok });
    const basic = await envoy.request(READ, { headers: { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` } });
    assertDenied(basic, { status: 401, code: 'login', error: null });
  });

  test('a malformed Authorization header: 400 invalid_request', async () => {
    const tok = await idp.token({ scope: SCOPE });
    for (const value of ['Bearer', 'Bearer ', `Bearer ${tok.access_token} trailing`, `Bearer  ${tok.access_token}x y`]) {
      const res = await envoy.request(READ, { headers: { authorization: value } });
      assertDenied(res, { status: 400, code: 'invalid', error: 'invalid_request', token: tok });
    }
  });

  test('two Authorization headers: 400 invalid_request', async () => {
    const tok = await idp.token({ scope: SCOPE });
    const res = await envoy.request(READ, { headers: { authorization: [`Bearer ${tok.access_token}`, `Bearer ${tok.access_token}`] } });
    assertDenied(res, { status: 400, code: 'invalid', error: 'invalid_request', token: tok });
  });

  test('a flipped signature byte: 401 invalid_token', async () => {
    for (const alg of ['RS256', 'ES256']) {
      const tok = await idp.token({ scope: SCOPE, alg });
      const forged = flipSignature(tok.access_token);
      const res = await envoy.request(READ, { headers: bearer(forged) });
      assertDenied(res, { status: 401, code: 'login', error: 'invalid_token', token: forged });
      assertNoToken(res, tok);
    }
  });

  test('a token whose claims were edited after signing: 401 invalid_token', async () => {
    const tok = await idp.token({ scope: 'patient/*.rs', patient: 'pat-alice' });
    const [h, p, s] = tok.access_token.split('.');
    const claims = JSON.parse(Buffer.from(p, 'base64url'));
    claims.scope = 'system/*.cruds';
    const forged = `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${s}`;
    const res = await envoy.request(READ, { headers: bearer(forged) });
    assertDenied(res, { status: 401, code: 'login', error: 'invalid_token', token: forged });
  });

  test('alg none and an unsigned token: 401 invalid_token', async () => {
    const tok = await idp.token({ scope: SCOPE });
    const { header, payload } = decodeJwt(tok.access_token);
    const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const none = `${enc({ ...header, alg: 'none' })}.${enc(payload)}.`;
    const res = await envoy.request(READ, { headers: bearer(none) });
    assert.equal(res.status, 401, res.text.slice(0, 300));
    assert.match(res.headers['www-authenticate'] ?? '', /error="invalid_token"/);
  });

  test('an expired token: 401 invalid_token, OperationOutcome expired', async () => {
    const tok = await idp.token({ scope: SCOPE, ttl: 1 });
    const { payload } = decodeJwt(tok.access_token);
    // exp + clockSkew (1 s) must be behind us.
    const waitMs = (payload.exp + 2) * 1000 - Date.now();
    if (waitMs > 0) await new Promise((r) => setTimeout(r, waitMs));
    const res = await envoy.request(READ, { headers: bearer(tok) });
    assertDenied(res, { status: 401, code: 'expired', error: 'invalid_token', token: tok });
  });

  test('a token for another audience: 401 invalid_token', async () => {
    const tok = await idp.token({ scope: SCOPE, resource: 'http://127.0.0.1:1/other-fhir' });
    assert.equal(decodeJwt(tok.access_token).payload.aud, 'http://127.0.0.1:1/other-fhir');
    const res = await envoy.request(READ, { headers: bearer(tok) });
    assertDenied(res, { status: 401, code: 'login', error: 'invalid_token', token: tok });
  });

  test('a token from another issuer: 401 invalid_token', async () => {
    const other = await startIdp({ audience: stack.audience });
    try {
      const tok = await other.token({ scope: SCOPE });
      const res = await envoy.request(READ, { headers: bearer(tok) });
      assertDenied(res, { status: 401, code: 'login', error: 'invalid_token', token: tok });
    } finally {
      await other.stop();
    }
  });

  test('an impostor signing with its own keys under our issuer and kid: 401 invalid_token', async () => {
    // Same iss, same aud, same kid values as the real IdP, but different key material.
    const impostorKeys = (await import('./lib/idp.mjs')).makeKeys().map((k, i) => ({ ...k, kid: idp.kids()[i] }));
    const impostor = await startIdp({ audience: stack.audience, issuer: idp.issuer, keys: impostorKeys });
    try {
      for (const alg of ['RS256', 'ES256']) {
        const tok = await impostor.token({ scope: SCOPE, alg });
        const { header, payload } = decodeJwt(tok.access_token);
        assert.equal(payload.iss, idp.issuer);
        assert.ok(idp.kids().includes(header.kid));
        const res = await envoy.request(READ, { headers: bearer(tok) });
        assertDenied(res, { status: 401, code: 'login', error: 'invalid_token', token: tok });
      }
    } finally {
      await impostor.stop();
    }
  });

  test('garbage and JWE-shaped tokens: 401, never 200', async () => {
    for (const garbage of ['not-a-jwt', 'a.b.c', 'eyJhbGciOiJSUzI1NiJ9.e30.', 'a.b.c.d.e']) {
      const res = await envoy.request(READ, { headers: bearer(garbage) });
      // README: a malformed token or a JWE is 401 invalid_token (each is valid b64token, so not 400).
      assertDenied(res, { status: 401, code: 'login', error: 'invalid_token' });
      assertNoToken(res, garbage.length >= 16 ? garbage : 'x'.repeat(40));
    }
  });

  test('key rotation: a token with a new kid is accepted without restarting Envoy', async () => {
    const oldKids = idp.kids();
    const before = idp.jwksFetches;
    const newKids = await idp.rotateKeys();
    assert.notDeepEqual(newKids, oldKids);
    for (const alg of ['RS256', 'ES256']) {
      const tok = await idp.token({ scope: SCOPE, alg });
      assert.ok(newKids.includes(decodeJwt(tok.access_token).header.kid));
      const res = await eventually(async () => {
        const r = await envoy.request(READ, { headers: bearer(tok) });
        return r.status === 200 ? r : null;
      }, { timeoutMs: 15_000, intervalMs: 500 });
      assert.ok(res, `a ${alg} token with a new kid was not accepted`);
    }
    assert.ok(idp.jwksFetches > before, 'the filter fetched the rotated key set');
  });

});

describe('an IdP outage after the keys were loaded', () => {
  let stack;
  before(async () => {
    // refresh 1 s (the minimum): the filter tries to refetch, and fails, during the outage.
    stack = await startStack({
      config: (ctx) => baseConfig(ctx, {
        provider: { jwks: { remote: { cluster: 'idp', authority: `127.0.0.1:${ctx.idp.port}`, path: '/jwks', refresh: '1s', timeout: '1s' } } },
      }),
    });
  });
  after(async () => {
    await stack?.stop();
  });

  test('a token the filter never saw verifies against the last good key set', async () => {
    const { envoy, idp } = stack;
    const seen = await idp.token({ scope: SCOPE });
    assert.equal((await envoy.request(READ, { headers: bearer(seen) })).status, 200);
    // Minted before the outage, presented only after it: no verification cache can answer for it,
    // only the stale key set.
    const fresh = await idp.token({ scope: SCOPE });
    const failures = async () => {
      const m = /^fhirgate_jwks_fetch_failures_total(?:\{[^}]*\})? (\d+)/m.exec(await envoy.prometheus());
      return m ? Number(m[1]) : 0;
    };
    const before = await failures();
    await idp.stop();
    try {
      const failed = await eventually(async () => ((await failures()) > before ? true : null), { timeoutMs: 15_000, intervalMs: 250 });
      assert.ok(failed, 'no failed JWKS refresh during the outage');
      const res = await envoy.request(READ, { headers: bearer(fresh) });
      assert.equal(res.status, 200, res.text.slice(0, 300));
      assert.equal(res.json.id, 'pat-alice');
    } finally {
      await idp.start();
    }
  });
});

describe('IdP down before the first key set', () => {
  let stack;
  let tok;
  before(async () => {
    // Mint a token, then take the IdP down before Envoy starts and could fetch its keys.
    stack = await startStack({
      beforeEnvoy: async ({ idp }) => {
        tok = await idp.token({ scope: SCOPE });
        await idp.stop();
      },
    });
  });
  after(async () => {
    await stack?.stop();
  });

  test('503 + Retry-After + OperationOutcome transient, then 200 once the IdP is back', async () => {
    const down = await stack.envoy.request(READ, { headers: bearer(tok) });
    assertDenied(down, { status: 503, code: 'transient', token: tok });
    assert.match(down.headers['retry-after'] ?? '', /^\d+$/, 'Retry-After in seconds');
    assert.equal(down.headers['www-authenticate'], undefined);

    await stack.idp.start();
    const up = await eventually(async () => {
      const r = await stack.envoy.request(READ, { headers: bearer(tok) });
      return r.status === 200 ? r : null;
    }, { timeoutMs: 30_000, intervalMs: 500 });
    assert.ok(up, 'still no 200 30 s after the IdP came back');
    assert.equal(up.json.id, 'pat-alice');
  });
});

describe('a bad configuration', () => {
  test('Envoy refuses the filter, and its log names the key', async () => {
    let stack;
    let log;
    try {
      stack = await startStack({ config: (ctx) => ({ ...baseConfig(ctx), notAKey: true }) });
    } catch (err) {
      assert.match(String(err.message), /exited before ready|not ready/);
      const file = /\(log ([^)]+)\)/.exec(String(err.message))?.[1];
      assert.ok(file, String(err.message));
      log = readFileSync(file, 'utf8');
    }
    if (stack) {
      try {
        const res = await stack.envoy.request(READ);
        assert.notEqual(res.status, 200, 'a rejected configuration let a request through');
        assert.equal(res.headers['x-upstream-saw-fhirgate'], undefined);
        log = stack.envoy.log();
      } finally {
        await stack.stop();
      }
    }
    const lines = log.split('\n').filter((l) => l.includes('notAKey'));
    assert.ok(lines.length > 0, `no log line names the key:\n${log.split('\n').slice(-30).join('\n')}`);
    assert.match(lines.join('\n'), /fhirgate/i, lines.join('\n'));
  });
});
