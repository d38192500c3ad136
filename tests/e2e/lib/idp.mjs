// A real OpenID provider (npm `oidc-provider`) for the end-to-end suite and the demo.
//
// It runs in the test's own Node process on 127.0.0.1 and issues real tokens from its real token
// endpoint. A test asks for a token with chosen properties and the IdP registers a fresh client for
// it (RFC 7591 dynamic registration) and then runs the client_credentials grant with a resource
// indicator (RFC 8707):
//
//   const idp = await startIdp();
//   const { access_token } = await idp.token({ scope: 'patient/*.rs', patient: 'p1', alg: 'ES256' });
//
// What each option becomes:
//   scope     -> `scope` claim (any value is accepted: the resource server allows what was asked)
//   resource  -> `aud` (default: the `audience` given to startIdp)
//   alg       -> JWS alg, RS256 or ES256 (two keys, one of each, are in the JWKS)
//   format    -> 'jwt' (default) or 'opaque' (introspect it at /token/introspection)
//   ttl       -> lifetime in seconds (default 300)
//   patient, fhirUser, claims{...} -> extra claims in the token (and in introspection answers)
//   dpop      -> a DPoP key (lib/dpop.mjs): the token request carries a proof signed with it and
//                oidc-provider binds the token to it (`cnf.jkt`, token_type DPoP)
//   mtls      -> a client certificate (lib/tls.mjs): the client registers with
//                tls_client_certificate_bound_access_tokens and asks for the token over the IdP's
//                TLS listener (`startTls`) presenting that certificate: `cnf["x5t#S256"]`
//
// Endpoints: discovery, /jwks, /token, /token/introspection (client `fhirgate`, client_secret_basic,
// secret `fhirgate-secret`), /token/revocation, /reg. JWTs can be introspected and revoked too (see
// `structuredTokenShim`: oidc-provider itself only does that for opaque tokens). `stop()` makes an outage (the port refuses
// connections), `start()` brings it back on the same port, `rotateKeys()` restarts with new keys.
import { createPublicKey, generateKeyPairSync, randomUUID, verify } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import Provider from 'oidc-provider';
import { proof as dpopProof } from './dpop.mjs';
import { requestTls, requestUrl } from './http.mjs';

/** The resource-server client the filter uses for introspection. */
export const INTROSPECTION_CLIENT = Object.freeze({ id: 'fhirgate', secret: 'fhirgate-secret' });

/** Claims a test may set on a token through `token({claims})` (oidc-provider owns the others). */
const EXTRA_METADATA = ['fhirgate_alg', 'fhirgate_format', 'fhirgate_ttl', 'fhirgate_claims'];

let keyCounter = 0;

/** In-memory oidc-provider adapter whose store outlives a provider restart (stop/start, rotation). */
function memoryAdapterFactory(store) {
  return class MemoryAdapter {
    constructor(model) {
      this.model = model;
    }

    key(id) {
      return `${this.model}:${id}`;
    }

    async upsert(id, payload, expiresIn) {
      const expiresAt = expiresIn ? Date.now() + expiresIn * 1000 : undefined;
      store.set(this.key(id), { payload, expiresAt });
      if (payload.grantId) {
        const grantKey = `grant:${payload.grantId}`;
        store.set(grantKey, { payload: [...(store.get(grantKey)?.payload ?? []), this.key(id)] });
      }
      if (payload.userCode) store.set(`userCode:${payload.userCode}`, { payload: id });
      if (payload.uid) store.set(`uid:${payload.uid}`, { payload: id });
    }

    async find(id) {
      const entry = store.get(this.key(id));
      if (!entry) return undefined;
      if (entry.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
        store.delete(this.key(id));
        return undefined;
      }
      return entry.payload;
    }

    async findByUserCode(userCode) {
      const id = store.get(`userCode:${userCode}`)?.payload;
      return id ? this.find(id) : undefined;
    }

    async findByUid(uid) {
      const id = store.get(`uid:${uid}`)?.payload;
      return id ? this.find(id) : undefined;
    }

    async consume(id) {
      const entry = store.get(this.key(id));
      if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
    }

    async destroy(id) {
      store.delete(this.key(id));
    }

    async revokeByGrantId(grantId) {
      for (const key of store.get(`grant:${grantId}`)?.payload ?? []) store.delete(key);
      store.delete(`grant:${grantId}`);
    }
  };
}

/** Makes one RS256 and one ES256 private JWK with fresh, distinct `kid`s. */
export function makeKeys() {
  keyCounter += 1;
  const stamp = `${Date.now().toString(36)}-${keyCounter}`;
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  return [
    { ...rsa, kid: `rsa-${stamp}`, alg: 'RS256', use: 'sig' },
    { ...ec, kid: `ec-${stamp}`, alg: 'ES256', use: 'sig' },
  ];
}

function parseBasic(header) {
  const m = /^Basic\s+(\S+)$/i.exec(header ?? '');
  if (!m) return null;
  const text = Buffer.from(m[1], 'base64').toString('utf8');
  const i = text.indexOf(':');
  if (i < 0) return null;
  return { id: decodeURIComponent(text.slice(0, i)), secret: decodeURIComponent(text.slice(i + 1)) };
}

function basicAuth(id, secret) {
  return `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

/** A running (or stopped) IdP; see the file comment. */
export class Idp {
  constructor({ port = 0, audience, keys, issuer } = {}) {
    this.port = port;
    this.issuerOverride = issuer;
    this.audience = audience;
    this.keys = keys ?? makeKeys();
    this.server = null;
    this.provider = null;
    this.store = new Map();
    this.revokedJti = new Set();
    this.requests = 0;
    this.jwksFetches = 0;
    /**
     * Fault switches (the soak, tests/soak): `jwks` 'ok' | 'fail' (HTTP 500) | 'hang' (never
     * answers); `introspection` 'ok' | 'slow' (answers after `introspectionDelayMs`) | 'down'
     * (the connection is reset). Only those two paths; every other endpoint keeps working.
     */
    this.faults = { jwks: 'ok', introspection: 'ok', introspectionDelayMs: 400 };
    /** Extra private JWKs published at /jwks before oidc-provider's own (`publishKeys`). */
    this.extraKeys = [];
    /** `{ at, answered }` per /jwks request (`answered`: 200, 500 or 'hang'). */
    this.jwksLog = [];
    /** Introspection requests received (any answer), and `{ at, ms, finished }` for each. */
    this.introspections = 0;
    this.introspectionLog = [];
    this.held = new Set();
    /** The TLS listener for certificate-bound tokens (`startTls`). */
    this.tlsServer = null;
    this.tlsPort = 0;
    this.tlsCa = null;
  }

  /** `http://127.0.0.1:<port>`; valid once started. */
  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The `iss` of its tokens: `url`, unless `issuer` was given (an impostor claiming another's name). */
  get issuer() {
    return this.issuerOverride ?? this.url;
  }

  /** Public JWKS this IdP publishes (for inline configs). */
  publicJwks() {
    return {
      keys: this.keys.map(({ d, p, q, dp, dq, qi, ...pub }) => pub), // eslint-disable-line no-unused-vars
    };
  }

  /** The current `kid`s, RSA first. */
  kids() {
    return this.keys.map((k) => k.kid);
  }

  buildProvider() {
    const idp = this;
    const provider = new Provider(this.issuer, {
      adapter: memoryAdapterFactory(this.store),
      ttl: {
        ClientCredentials: (_ctx, _token, client) => client.fhirgateTtl ?? client.fhirgate_ttl ?? 300,
        Grant: 3600,
        Session: 3600,
        Interaction: 600,
      },
      clients: [
        {
          client_id: INTROSPECTION_CLIENT.id,
          client_secret: INTROSPECTION_CLIENT.secret,
          grant_types: [],
          response_types: [],
          redirect_uris: [],
          token_endpoint_auth_method: 'client_secret_basic',
        },
      ],
      jwks: { keys: this.keys },
      routes: { jwks: '/jwks' },
      scopes: ['openid', 'offline_access'],
      extraClientMetadata: {
        properties: EXTRA_METADATA,
        validator(_ctx, key, value) {
          if (key === 'fhirgate_claims' && value !== undefined && (typeof value !== 'object' || Array.isArray(value))) {
            throw new Error('fhirgate_claims must be an object');
          }
        },
      },
      features: {
        devInteractions: { enabled: false },
        clientCredentials: { enabled: true },
        // The resource server `fhirgate` may introspect any token; a client may revoke its own.
        introspection: { enabled: true, allowedPolicy: async () => true },
        revocation: {
          enabled: true,
          allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId,
        },
        registration: { enabled: true },
        // DPoP-bound tokens (RFC 9449): a token request with a DPoP proof gets `cnf.jkt`.
        dPoP: { enabled: true },
        // Certificate-bound tokens (RFC 8705): for clients registered with
        // tls_client_certificate_bound_access_tokens, the client certificate of the TLS
        // connection the token request came on (the IdP's TLS listener) becomes `cnf["x5t#S256"]`.
        mTLS: {
          enabled: true,
          certificateBoundAccessTokens: true,
          getCertificate(ctx) {
            const socket = ctx.req.socket;
            const peer = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate() : null;
            if (!peer?.raw) return undefined;
            return `-----BEGIN CERTIFICATE-----\n${peer.raw.toString('base64')}\n-----END CERTIFICATE-----`;
          },
          certificateAuthorized: (ctx) => ctx.req.socket.authorized === true,
          certificateSubjectMatches: () => false,
        },
        resourceIndicators: {
          enabled: true,
          defaultResource: () => idp.audience,
          useGrantedResource: () => true,
          getResourceServerInfo(ctx, resource, client) {
            const alg = client.fhirgateAlg ?? client.fhirgate_alg ?? 'RS256';
            const format = client.fhirgateFormat ?? client.fhirgate_format ?? 'jwt';
            const ttl = client.fhirgateTtl ?? client.fhirgate_ttl ?? 300;
            const info = {
              scope: ctx.oidc.params?.scope ?? '',
              audience: resource,
              accessTokenTTL: ttl,
              accessTokenFormat: format,
            };
            if (format === 'jwt') info.jwt = { sign: { alg } };
            return info;
          },
        },
      },
      async extraTokenClaims(ctx, token) {
        const client = ctx?.oidc?.client ?? (await ctx.oidc.provider.Client.find(token.clientId));
        return client?.fhirgateClaims ?? client?.fhirgate_claims ?? undefined;
      },
      clientBasedCORS: () => false,
    });
    provider.proxy = false;
    return provider;
  }

  /** Starts (or restarts after `stop`) on the same port. */
  async start() {
    if (this.server) return this;
    const server = http.createServer();
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.port = server.address().port;
    this.audience ??= `${this.url}/fhir`;
    this.provider = this.buildProvider();
    const callback = this.provider.callback();
    server.on('request', (req, res) => {
      this.requests += 1;
      if (req.url === '/jwks') this.jwksFetches += 1;
      if (req.url === '/jwks' && this.serveJwksFault(req, res)) return;
      if (req.method === 'POST' && req.url === '/token/introspection') {
        this.introspections += 1;
        const at = Date.now();
        // `finished`: the answer was written before the caller gave up (false: reset or timed out).
        res.on('close', () => this.introspectionLog.push({ at, ms: Date.now() - at, finished: res.writableFinished }));
        if (this.faults.introspection === 'down') {
          req.socket.destroy();
          return;
        }
      }
      if (req.method === 'POST' && req.url === '/token/introspection' && this.faults.introspection === 'slow') {
        setTimeout(() => {
          this.structuredTokenShim(req, res, callback).catch(() => {
            if (!res.headersSent) res.writeHead(500);
            res.end();
          });
        }, this.faults.introspectionDelayMs);
        return;
      }
      if (req.method === 'POST' && (req.url === '/token/introspection' || req.url === '/token/revocation')) {
        this.structuredTokenShim(req, res, callback).catch(() => {
          if (!res.headersSent) res.writeHead(500);
          res.end();
        });
        return;
      }
      callback(req, res);
    });
    this.server = server;
    return this;
  }

  /**
   * Answers /jwks itself when a fault is set or extra keys are published (returns true), else
   * leaves it to oidc-provider. Every request is logged in `jwksLog`.
   */
  serveJwksFault(req, res) {
    const mode = this.faults.jwks;
    const entry = { at: Date.now(), answered: 200 };
    this.jwksLog.push(entry);
    if (mode === 'fail') {
      entry.answered = 500;
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('jwks endpoint failing');
      return true;
    }
    if (mode === 'hang') {
      entry.answered = 'hang';
      this.held.add(res);
      res.on('close', () => this.held.delete(res));
      return true;
    }
    if (this.extraKeys.length === 0) return false;
    const strip = ({ d, p, q, dp, dq, qi, ...pub }) => pub; // eslint-disable-line no-unused-vars
    res.writeHead(200, { 'content-type': 'application/jwk-set+json' });
    res.end(JSON.stringify({ keys: [...this.extraKeys.map(strip), ...this.publicJwks().keys] }));
    return true;
  }

  /**
   * A rotation that keeps the old keys: `keys` (private JWKs, default `makeKeys()`, new kids) are
   * published at /jwks before the current ones, without a restart. Returns them (to sign with).
   */
  publishKeys(keys = makeKeys()) {
    this.extraKeys = [...keys, ...this.extraKeys];
    return keys;
  }

  /**
   * oidc-provider refuses to introspect or revoke JWT access tokens (`unsupported_token_type`).
   * So that `introspection.mode: "always"` can be tested, this IdP answers those two cases itself:
   * same client authentication, the signature checked against its own keys, revocation by `jti`.
   * Every other request (opaque tokens) goes to oidc-provider untouched (the body it reads is the
   * one read here, handed over as `req.body`, which oidc-provider supports).
   */
  async structuredTokenShim(req, res, callback) {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const text = Buffer.concat(chunks).toString('utf8');
    const form = new URLSearchParams(text);
    const token = form.get('token') ?? '';
    const payload = this.verifyOwnJwt(token);
    if (payload === undefined) {
      req.body = text;
      callback(req, res);
      return;
    }
    const json = (status, body) => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(body));
    };
    const caller = parseBasic(req.headers.authorization);
    if (req.url === '/token/introspection') {
      if (!caller || caller.id !== INTROSPECTION_CLIENT.id || caller.secret !== INTROSPECTION_CLIENT.secret) {
        json(401, { error: 'invalid_client' });
        return;
      }
      const now = Math.floor(Date.now() / 1000);
      const active = payload !== null && payload.exp > now && !this.revokedJti.has(payload.jti);
      json(200, active ? { ...payload, active: true, token_type: 'Bearer' } : { active: false });
      return;
    }
    // Revocation: only the client the token was issued to, authenticated with its secret.
    const client = caller ? this.store.get(`Client:${caller.id}`)?.payload : undefined;
    if (!client || client.client_secret !== caller.secret) {
      json(401, { error: 'invalid_client' });
      return;
    }
    if (payload !== null && payload.client_id === caller.id) this.revokedJti.add(payload.jti);
    res.writeHead(200);
    res.end();
  }

  /**
   * For a compact JWS: its payload when signed by one of this IdP's current keys and issued by it,
   * `null` when it is a JWS but not a valid one of ours, `undefined` when it is not a JWS at all.
   */
  verifyOwnJwt(token) {
    const parts = token.split('.');
    if (parts.length !== 3) return undefined;
    let header;
    let payload;
    try {
      header = JSON.parse(Buffer.from(parts[0], 'base64url'));
      payload = JSON.parse(Buffer.from(parts[1], 'base64url'));
    } catch {
      return undefined;
    }
    if (typeof header?.alg !== 'string') return undefined;
    const jwk = this.publicJwks().keys.find((k) => k.kid === header.kid && k.alg === header.alg);
    if (!jwk) return null;
    const key = createPublicKey({ key: jwk, format: 'jwk' });
    const data = Buffer.from(`${parts[0]}.${parts[1]}`);
    const sig = Buffer.from(parts[2], 'base64url');
    const ok = header.alg === 'ES256'
      ? verify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, sig)
      : verify('sha256', data, key, sig);
    return ok && payload.iss === this.issuer ? payload : null;
  }

  /**
   * A second, TLS listener on the same provider (server certificate `pki.server`, client
   * certificates from `pki.ca` requested and validated), for certificate-bound token requests.
   */
  async startTls(pki) {
    if (this.tlsServer) return this;
    const server = https.createServer({
      cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert, requestCert: true, rejectUnauthorized: true,
    });
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    this.tlsPort = server.address().port;
    this.tlsCa = pki.ca.cert;
    server.on('request', (req, res) => {
      this.requests += 1;
      this.provider.callback()(req, res);
    });
    this.tlsServer = server;
    return this;
  }

  /** Stops listening and drops every open connection (an outage). */
  async stop() {
    if (this.tlsServer) {
      const tlsServer = this.tlsServer;
      this.tlsServer = null;
      await new Promise((resolve) => {
        tlsServer.close(() => resolve());
        tlsServer.closeAllConnections();
      });
    }
    for (const res of this.held) res.destroy();
    this.held.clear();
    const server = this.server;
    if (!server) return;
    this.server = null;
    await new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  /** Replaces both signing keys (new kids) and restarts on the same port. Tokens issued so far keep their old kid. */
  async rotateKeys(keys = makeKeys()) {
    await this.stop();
    this.keys = keys;
    await this.start();
    return this.kids();
  }

  async post(path, form, auth, { headers = {}, cert } = {}) {
    const options = {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: auth, ...headers },
      body: new URLSearchParams(form).toString(),
      timeoutMs: 10_000,
    };
    const res = cert
      ? await requestTls(this.tlsPort, path, { ...options, ca: this.tlsCa, cert: cert.cert, key: cert.key })
      : await requestUrl(`${this.url}${path}`, options);
    return { status: res.status, body: res.json ?? res.text };
  }

  /** GET `path` on the IdP; resolves `{ status, json, text, headers }`. */
  get(path) {
    return requestUrl(`${this.url}${path}`, { timeoutMs: 10_000 });
  }

  /** Registers a confidential client_credentials client with the given token properties. */
  async registerClient({ alg = 'RS256', format = 'jwt', ttl = 300, claims, mtls = false } = {}) {
    const metadata = {
      client_name: `e2e-${randomUUID()}`,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      fhirgate_alg: alg,
      fhirgate_format: format,
      fhirgate_ttl: ttl,
    };
    if (claims && Object.keys(claims).length > 0) metadata.fhirgate_claims = claims;
    if (mtls) metadata.tls_client_certificate_bound_access_tokens = true;
    const res = await requestUrl(`${this.url}/reg`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(metadata),
      timeoutMs: 10_000,
    });
    const body = res.json;
    if (res.status !== 201) throw new Error(`client registration failed: ${res.status} ${res.text}`);
    return { clientId: body.client_id, clientSecret: body.client_secret };
  }

  /**
   * Mints a real access token from the token endpoint.
   * Returns `{ access_token, expires_in, scope, token_type, clientId, clientSecret }`.
   */
  async token({
    scope = 'system/*.rs', resource, alg, format, ttl, patient, fhirUser, claims = {}, dpop, mtls,
  } = {}) {
    const all = { ...claims };
    if (patient !== undefined) all.patient = patient;
    if (fhirUser !== undefined) all.fhirUser = fhirUser;
    const client = await this.registerClient({ alg, format, ttl, claims: all, mtls: Boolean(mtls) });
    const form = { grant_type: 'client_credentials', resource: resource ?? this.audience };
    if (scope) form.scope = scope;
    const base = mtls ? `https://127.0.0.1:${this.tlsPort}` : this.url;
    const headers = dpop ? { dpop: dpopProof(dpop, { htm: 'POST', htu: `${base}/token` }) } : {};
    const res = await this.post('/token', form, basicAuth(client.clientId, client.clientSecret), { headers, cert: mtls });
    if (res.status !== 200) throw new Error(`token request failed: ${res.status} ${JSON.stringify(res.body)}`);
    return { ...res.body, ...client };
  }

  /** Revokes a token at the revocation endpoint with the client that obtained it. */
  async revoke(tok) {
    const res = await this.post(
      '/token/revocation',
      { token: tok.access_token, token_type_hint: 'access_token' },
      basicAuth(tok.clientId, tok.clientSecret),
    );
    if (res.status !== 200) throw new Error(`revocation failed: ${res.status}`);
  }

  /** Introspects as the `fhirgate` resource server would. */
  async introspect(accessToken) {
    const res = await this.post(
      '/token/introspection',
      { token: accessToken, token_type_hint: 'access_token' },
      basicAuth(INTROSPECTION_CLIENT.id, INTROSPECTION_CLIENT.secret),
    );
    return res.body;
  }
}

/** Creates and starts an IdP on 127.0.0.1 (port 0 = a free one). */
export async function startIdp(options = {}) {
  const idp = new Idp(options);
  await idp.start();
  return idp;
}

// Standalone: `node lib/idp.mjs [port]` prints the issuer and runs until killed.
if (import.meta.url === `file://${process.argv[1]}`) {
  const idp = await startIdp({ port: Number(process.argv[2] ?? 0) });
  console.log(JSON.stringify({ issuer: idp.issuer, kids: idp.kids() }));
  const stop = () => idp.stop().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
