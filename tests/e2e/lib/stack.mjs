// The whole end-to-end stack in one call: IdP + FHIR upstream + Envoy with fhirgate, and the
// assertions every test shares (contract §3 denials, never the token in a response).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startEnvoy, freePort } from './envoy.mjs';
import { startFhir } from './fhir.mjs';
import { startIdp, INTROSPECTION_CLIENT } from './idp.mjs';

/**
 * The filter configuration the suite uses (contract §1): one provider `main` for `idp`, remote JWKS
 * through the `idp` cluster, the audience `http://127.0.0.1:<listenPort>/fhir`, clockSkew 1 s.
 * `overrides.provider` is merged into the provider, every other key into the top level.
 */
export function baseConfig({ idp, audience }, overrides = {}) {
  const { provider = {}, ...top } = overrides;
  return {
    fhir: { basePath: '/fhir' },
    providers: [{
      name: 'main',
      issuer: idp.issuer,
      audiences: [audience],
      jwks: {
        remote: { cluster: 'idp', authority: `127.0.0.1:${idp.port}`, path: '/jwks', refresh: '60s', timeout: '2s' },
      },
      clockSkew: '1s',
      ...provider,
    }],
    ...top,
  };
}

/** The `introspection` block for the `fhirgate` resource-server client of `idp`. */
export function introspectionConfig(idp, extra = {}) {
  return {
    cluster: 'idp',
    authority: `127.0.0.1:${idp.port}`,
    path: '/token/introspection',
    clientId: INTROSPECTION_CLIENT.id,
    clientSecret: INTROSPECTION_CLIENT.secret,
    mode: 'opaque',
    cacheTtl: '2s',
    timeout: '1s',
    ...extra,
  };
}

/**
 * Starts IdP, FHIR upstream and Envoy. `config(ctx)` returns the filter configuration (default
 * `baseConfig(ctx)`); `config: null` runs Envoy without fhirgate. `beforeEnvoy(ctx)` runs once IdP
 * and upstream are up; `idpDown: true` then stops the IdP before Envoy starts (start it again with
 * `stack.idp.start()`); `editBootstrap` goes to `startEnvoy`. `pki` (lib/tls.mjs) adds TLS
 * listeners that request client certificates to Envoy (`envoy.requestTls`, `ctx.tlsPort`) and to
 * the IdP (certificate-bound tokens). `fhirFixtures` enables named upstream fixtures where the FHIR
 * router lacks a feature (lib/fhir.mjs, e.g. `['compartment-search']`).
 */
export async function startStack({
  config = (ctx) => baseConfig(ctx), idpDown = false, clusters, beforeEnvoy, extraFilters, editBootstrap,
  stopIteration = true, pki, fhirFixtures = [],
} = {}) {
  const listenPort = await freePort();
  const tlsPort = pki ? await freePort() : undefined;
  const audience = `http://127.0.0.1:${listenPort}/fhir`;
  const idp = await startIdp({ audience });
  if (pki) await idp.startTls(pki);
  const fhir = await startFhir({ fixtures: fhirFixtures });
  const stack = { idp, fhir, audience, envoy: null };
  stack.stop = async () => {
    await stack.envoy?.stop();
    await idp.stop();
    await fhir.stop();
  };
  try {
    if (beforeEnvoy) await beforeEnvoy({ idp, fhir, audience, listenPort });
    if (idpDown) await idp.stop();
    const ctx = { idp, fhir, audience, listenPort, tlsPort };
    const filterConfig = config === null ? null : config(ctx);
    const filters = typeof extraFilters === 'function' ? extraFilters(ctx) : extraFilters;
    const tls = pki ? {
      port: tlsPort, certFile: pki.server.certFile, keyFile: pki.server.keyFile, caFile: pki.ca.certFile, ca: pki.ca.cert,
    } : undefined;
    stack.envoy = await startEnvoy({
      listenPort, fhirPort: fhir.port, idpPort: idp.port, filterConfig, clusters, extraFilters: filters, editBootstrap,
      stopIteration, tls,
    });
  } catch (err) {
    await stack.stop();
    throw err;
  }
  return stack;
}

/** `Authorization: Bearer <token>` headers (plus `extra`). */
export function bearer(token, extra = {}) {
  return { authorization: `Bearer ${typeof token === 'string' ? token : token.access_token}`, ...extra };
}

/** Fails when any response header or the body contains the token (or its signature part). */
export function assertNoToken(res, token) {
  const value = typeof token === 'string' ? token : token.access_token;
  const parts = [value, ...value.split('.').filter((p) => p.length >= 16)];
  const haystack = [res.text, ...res.rawHeaders].join('\n');
  for (const p of parts) assert.ok(!haystack.includes(p), 'the response repeats the token');
}

/** Parses `WWW-Authenticate: Bearer k="v", ...` into `{ scheme, params }`. */
export function parseChallenge(header) {
  assert.ok(header, 'WWW-Authenticate missing');
  const m = /^(\S+)\s*(.*)$/.exec(header);
  const params = {};
  for (const p of m[2].matchAll(/([A-Za-z_]+)="((?:[^"\\]|\\.)*)"/g)) params[p[1]] = p[2];
  return { scheme: m[1], params };
}

/**
 * Asserts a filter denial per contract §3: status, `application/fhir+json`, an OperationOutcome
 * whose issue[0].code is `code`, and (when `error` is given) the WWW-Authenticate error attribute.
 * `error: null` asserts a Bearer challenge without an error attribute; `error: undefined` skips it.
 * Every denial must be `cache-control: no-store` with a reason code in `issue[0].details.text`
 * (`reason`, when given, is that code).
 */
export function assertDenied(res, { status, code, error, token, reason }) {
  assert.equal(res.status, status, `status (body: ${res.text.slice(0, 300)})`);
  assert.match(res.headers['content-type'] ?? '', /^application\/fhir\+json/);
  // README "Responses made by fhirgate": every answer is no-store and names its reason code.
  assert.equal(res.headers['cache-control'], 'no-store', 'cache-control');
  assert.equal(res.json?.resourceType, 'OperationOutcome', 'body is an OperationOutcome');
  assert.equal(res.json?.issue?.[0]?.code, code, `OperationOutcome code (body: ${res.text.slice(0, 300)})`);
  const text = res.json?.issue?.[0]?.details?.text;
  assert.match(text ?? '', /^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$/, `issue[0].details.text is a reason code (body: ${res.text.slice(0, 300)})`);
  if (reason !== undefined) assert.equal(text, reason, 'reason code');
  if (error === null) {
    const ch = parseChallenge(res.headers['www-authenticate']);
    assert.equal(ch.scheme.toLowerCase(), 'bearer');
    assert.ok(ch.params.realm !== undefined, 'realm attribute');
    assert.equal(ch.params.error, undefined, 'no error attribute');
  } else if (error !== undefined) {
    const ch = parseChallenge(res.headers['www-authenticate']);
    assert.equal(ch.scheme.toLowerCase(), 'bearer');
    assert.equal(ch.params.error, error);
  }
  if (token) assertNoToken(res, token);
  // The denial comes from the filter, not from the upstream.
  assert.equal(res.headers['x-upstream-saw-fhirgate'], undefined, 'the request reached the upstream');
}

/** Retries `fn` until it returns a truthy value or `timeoutMs` passes; returns the last value. */
export async function eventually(fn, { timeoutMs = 20_000, intervalMs = 250 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  return last;
}

/** A token with one byte of its signature changed (still valid base64url). */
export function flipSignature(token) {
  const [h, p, s] = token.split('.');
  const i = Math.floor(s.length / 2);
  const c = s[i] === 'A' ? 'B' : 'A';
  return `${h}.${p}.${s.slice(0, i)}${c}${s.slice(i + 1)}`;
}

/** Decodes a JWT's header and payload (no verification). */
export function decodeJwt(token) {
  const [h, p] = token.split('.');
  return { header: JSON.parse(Buffer.from(h, 'base64url')), payload: JSON.parse(Buffer.from(p, 'base64url')) };
}

/**
 * Waits until Envoy's log holds the audit record of a fresh marker request (an unauthenticated
 * request with its own `x-request-id`): everything the filter logged before it is then in the
 * file, so a negative check of the log ("no token in it") looks at a complete log, not a late one.
 */
export async function logSettled(envoy) {
  const id = `log-marker-${randomUUID()}`;
  await envoy.request('/fhir/Patient/log-marker', { headers: { 'x-request-id': id } });
  const seen = await eventually(() => envoy.auditRecords().some((r) => r.requestId === id), { timeoutMs: 10_000, intervalMs: 50 });
  assert.ok(seen, `the marker request's audit record never reached the log:\n${envoy.log().slice(-1500)}`);
}
