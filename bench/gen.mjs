// Generates the benchmark's key, inline JWKS, tokens and Envoy configurations into $OUT.
// node bench/gen.mjs <out-dir> <n-distinct-tokens>
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

const ISSUER = 'https://idp.bench.local';
const AUDIENCE = 'http://127.0.0.1:18000/fhir';
const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
function token(key, i, now) {
  const h = b64({ alg: 'RS256', typ: 'at+jwt', kid: 'bench-rs' });
  const p = b64({
    iss: ISSUER, aud: AUDIENCE, sub: `user-${i}`, client_id: 'bench-app', iat: now, exp: now + 3 * 3600,
    jti: `t-${i}`, scope: 'launch/patient patient/Observation.rs patient/Patient.rs', patient: '123',
    consent: 'research',
  });
  const s = crypto.sign('sha256', Buffer.from(`${h}.${p}`), key).toString('base64url');
  return `${h}.${p}.${s}`;
}
if (!isMainThread) {
  // a signing worker: tokens [from, to)
  const key = crypto.createPrivateKey(workerData.pem);
  const tokens = [];
  for (let i = workerData.from; i < workerData.to; i++) tokens.push(token(key, i, workerData.now));
  parentPort.postMessage(tokens);
  process.exit(0);
}

const [out, nArg] = process.argv.slice(2);
const N = Number(nArg || 10000);
const here = path.dirname(new URL(import.meta.url).pathname);
fs.mkdirSync(out, { recursive: true });

// Tokens are reused from an earlier run when there are as many and they are still fresh (signing
// 100,000 RS256 tokens takes about a minute on two cores).
const metaPath = path.join(out, 'meta.json');
const now = Math.floor(Date.now() / 1000);
let meta = fs.existsSync(metaPath) ? JSON.parse(fs.readFileSync(metaPath, 'utf8')) : null;
const reuse = meta && meta.n === N && meta.ISSUER === ISSUER && now - meta.now < 3600
  && fs.existsSync(path.join(out, 'key.pem')) && fs.existsSync(path.join(out, 'tokens.txt'));
let jwk;
if (reuse) {
  jwk = meta.jwk;
  console.log(`bench: reusing ${N} tokens signed ${now - meta.now}s ago`);
} else {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'bench-rs', alg: 'RS256', use: 'sig' };
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' });
  fs.writeFileSync(path.join(out, 'key.pem'), pem);
  const workers = Math.max(1, Math.min(os.availableParallelism(), 4));
  const per = Math.ceil(N / workers);
  const parts = await Promise.all(Array.from({ length: workers }, (_, w) => new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), {
      workerData: { pem, from: w * per, to: Math.min(N, (w + 1) * per), now },
    });
    worker.once('message', resolve);
    worker.once('error', reject);
  })));
  fs.writeFileSync(path.join(out, 'tokens.txt'), parts.flat().join('\n') + '\n');
  fs.writeFileSync(path.join(out, 'token.txt'), token(privateKey, -1, now) + '\n');
  const opaque = [];
  for (let i = 0; i < 100; i++) opaque.push(`opaque-${crypto.randomBytes(16).toString('hex')}`);
  fs.writeFileSync(path.join(out, 'opaque.txt'), opaque.join('\n') + '\n');
  meta = { ISSUER, AUDIENCE, now, n: N, jwk };
  fs.writeFileSync(metaPath, JSON.stringify(meta));
}
const jwks = { keys: [jwk] };

const rules = JSON.parse(fs.readFileSync(path.join(here, 'rules.json'), 'utf8'));
const fhirgate = {
  fhir: { basePath: '/fhir' },
  providers: [{
    name: 'bench', issuer: ISSUER, audiences: [AUDIENCE], jwks: { inline: jwks },
    algorithms: ['RS256'], clockSkew: '30s',
    introspection: {
      cluster: 'idp', authority: '127.0.0.1:18081', path: '/introspect', clientId: 'fhirgate',
      clientSecret: 'bench-secret', mode: 'opaque', cacheTtl: '300s', timeout: '1s',
    },
  }],
  rules,
  cache: { maxEntries: 1000, sharedSlots: 1000 },
};
fs.writeFileSync(path.join(out, 'fhirgate.json'), JSON.stringify(fhirgate));
fs.writeFileSync(path.join(out, 'jwks.json'), JSON.stringify(jwks));

// ---- Envoy bootstraps (JSON): one worker, direct response, admin on 18001.
const WASM = process.env.WASM;
const direct = { status: 200, body: { inline_string: '{"resourceType":"Bundle","type":"searchset","total":0}' } };
const cluster = (name, port) => ({
  name, type: 'STATIC', connect_timeout: '1s',
  load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }] },
});
function bootstrap(filters, clusters = []) {
  return {
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: 18001 } } },
    static_resources: {
      listeners: [{
        name: 'bench', address: { socket_address: { address: '127.0.0.1', port_value: 18000 } },
        filter_chains: [{ filters: [{
          name: 'envoy.filters.network.http_connection_manager',
          typed_config: {
            '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
            stat_prefix: 'bench', generate_request_id: true,
            route_config: { virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, direct_response: direct }] }] },
            http_filters: [...filters, { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
          },
        }] }],
      }],
      clusters,
    },
  };
}
const jwtAuthn = {
  name: 'envoy.filters.http.jwt_authn',
  typed_config: {
    '@type': 'type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication',
    providers: { bench: {
      issuer: ISSUER, audiences: [AUDIENCE], local_jwks: { inline_string: JSON.stringify(jwks) },
      payload_in_metadata: 'jwt_payload', clock_skew_seconds: 30,
      jwt_cache_config: { jwt_cache_size: 1000 },
    } },
    rules: [{ match: { prefix: '/' }, requires: { provider_name: 'bench' } }],
  },
};
const rbac = {
  name: 'envoy.filters.http.rbac',
  typed_config: {
    '@type': 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC',
    rules: { action: 'ALLOW', policies: { patient_scope: {
      permissions: [{ url_path: { path: { prefix: '/fhir/Observation' } } }],
      principals: [{ metadata: { filter: 'envoy.filters.http.jwt_authn', path: [{ key: 'jwt_payload' }, { key: 'scope' }], value: { string_match: { contains: 'patient/Observation.rs' } } } }],
    } } },
  },
};
const wasm = {
  name: 'envoy.filters.http.wasm',
  typed_config: {
    '@type': 'type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm',
    config: {
      name: 'fhirgate', root_id: 'fhirgate', fail_open: false,
      // response checks pause the response headers until the body is checked (Envoy >= 1.35)
      allow_on_headers_stop_iteration: true,
      vm_config: { vm_id: 'fhirgate', runtime: 'envoy.wasm.runtime.v8', code: { local: { filename: WASM } } },
      configuration: { '@type': 'type.googleapis.com/google.protobuf.StringValue', value: JSON.stringify(fhirgate) },
    },
  },
};
fs.writeFileSync(path.join(out, 'envoy-alone.json'), JSON.stringify(bootstrap([])));
fs.writeFileSync(path.join(out, 'envoy-native.json'), JSON.stringify(bootstrap([jwtAuthn, rbac])));
fs.writeFileSync(path.join(out, 'envoy-fhirgate.json'), JSON.stringify(bootstrap([wasm], [cluster('idp', 18081)])));
