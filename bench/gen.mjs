// Generates the benchmark's keys (RSA 2048 and P-256), inline JWKS, tokens and Envoy bootstraps
// into $OUT:  node bench/gen.mjs <out-dir> <n-tokens>
//   <alg>-one.txt   one token (scenario a: one repeated token)
//   <alg>-rot.txt   n distinct tokens, rotated through (scenario b)
//   <alg>-new.txt   n more distinct tokens, each presented once (scenario c: first-seen tokens)
// for alg rs256 and es256. Tokens are reused from an earlier run when as many are still fresh.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

const ISSUER = 'https://idp.bench.local';
const AUDIENCE = 'http://127.0.0.1:18000/fhir';
const ALGS = { rs256: { alg: 'RS256', kid: 'bench-rs' }, es256: { alg: 'ES256', kid: 'bench-es' } };
const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
function token(key, which, i, now) {
  const { alg, kid } = ALGS[which];
  const h = b64({ alg, typ: 'at+jwt', kid });
  const p = b64({
    iss: ISSUER, aud: AUDIENCE, sub: `user-${i}`, client_id: 'bench-app', iat: now, exp: now + 3 * 3600,
    jti: `t-${which}-${i}`, scope: 'launch/patient patient/Observation.rs patient/Patient.rs', patient: '123',
    consent: 'research',
  });
  const input = Buffer.from(`${h}.${p}`);
  const s = alg === 'RS256'
    ? crypto.sign('sha256', input, key)
    : crypto.sign('sha256', input, { key, dsaEncoding: 'ieee-p1363' });
  return `${h}.${p}.${s.toString('base64url')}`;
}
if (!isMainThread) {
  // a signing worker: tokens [from, to) of one algorithm
  const key = crypto.createPrivateKey(workerData.pem);
  const tokens = [];
  for (let i = workerData.from; i < workerData.to; i++) tokens.push(token(key, workerData.which, i, workerData.now));
  parentPort.postMessage(tokens);
  process.exit(0);
}

const [out, nArg] = process.argv.slice(2);
const N = Number(nArg || 10000);
fs.mkdirSync(out, { recursive: true });

const metaPath = path.join(out, 'meta.json');
const now = Math.floor(Date.now() / 1000);
let meta = fs.existsSync(metaPath) ? JSON.parse(fs.readFileSync(metaPath, 'utf8')) : null;
const files = Object.keys(ALGS).flatMap((w) => ['one', 'rot', 'new'].map((s) => path.join(out, `${w}-${s}.txt`)));
const reuse = meta && meta.n === N && meta.v === 2 && now - meta.now < 3600 && files.every((f) => fs.existsSync(f));
async function sign(which, pem, from, to) {
  const workers = Math.max(1, Math.min(os.availableParallelism(), 4));
  const per = Math.ceil((to - from) / workers);
  const parts = await Promise.all(Array.from({ length: workers }, (_, w) => new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), {
      workerData: { pem, which, from: from + w * per, to: Math.min(to, from + (w + 1) * per), now },
    });
    worker.once('message', resolve);
    worker.once('error', reject);
  })));
  return parts.flat();
}
if (reuse) {
  console.log(`bench: reusing the tokens signed ${now - meta.now}s ago`);
} else {
  const jwks = [];
  for (const [which, { alg, kid }] of Object.entries(ALGS)) {
    const { privateKey, publicKey } = alg === 'RS256'
      ? crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })
      : crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    jwks.push({ ...publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' });
    const pem = privateKey.export({ format: 'pem', type: 'pkcs8' });
    const write = (name, list) => fs.writeFileSync(path.join(out, `${which}-${name}.txt`), list.join('\n') + '\n');
    write('one', await sign(which, pem, -1, 0));
    write('rot', await sign(which, pem, 0, N));
    write('new', await sign(which, pem, N, 2 * N));
  }
  meta = { v: 2, ISSUER, AUDIENCE, now, n: N, jwks: { keys: jwks } };
  fs.writeFileSync(metaPath, JSON.stringify(meta));
}
const { jwks } = meta;

// The contract's configuration: SMART scopes and the patient compartment (defaults), the default
// consent check of every returned resource, audit (at info: Envoy runs at -l error, so records
// are not formatted), and the three CEL rules of bench/rules.json.
const here = path.dirname(new URL(import.meta.url).pathname);
const rules = JSON.parse(fs.readFileSync(path.join(here, 'rules.json'), 'utf8'));
const fhirgate = {
  fhir: { basePath: '/fhir' },
  providers: [{
    name: 'bench', issuer: ISSUER, audiences: [AUDIENCE], jwks: { inline: jwks },
    algorithms: ['RS256', 'ES256'], clockSkew: '30s',
  }],
  rules,
};
fs.writeFileSync(path.join(out, 'fhirgate.json'), JSON.stringify(fhirgate));
fs.writeFileSync(path.join(out, 'jwks.json'), JSON.stringify(jwks));

// The upstream's answer: a Patient as a FHIR server (HAPI FHIR) sends it for a read.
const patient = {
  resourceType: 'Patient', id: '123',
  meta: { versionId: '3', lastUpdated: '2026-10-14T09:21:44.512+00:00', source: '#m0bR8dTq1xZk2Pv9',
    profile: ['http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient'] },
  text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml"><div class="hapiHeaderText">Amy V. <b>SHAW </b></div><table class="hapiPropertyTable"><tbody><tr><td>Identifier</td><td>1032702</td></tr><tr><td>Address</td><td><span>49 Meadow St </span><br/><span>Mounds </span><span>OK </span><span>US </span></td></tr><tr><td>Date of birth</td><td><span>20 February 1987</span></td></tr></tbody></table></div>' },
  extension: [
    { url: 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-race', extension: [
      { url: 'ombCategory', valueCoding: { system: 'urn:oid:2.16.840.1.113883.6.238', code: '2106-3', display: 'White' } },
      { url: 'text', valueString: 'White' }] },
    { url: 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex', valueCode: 'F' },
  ],
  identifier: [{ use: 'usual', type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR', display: 'Medical Record Number' }], text: 'Medical Record Number' }, system: 'http://hospital.smarthealthit.org', value: '1032702' }],
  active: true,
  name: [{ use: 'official', family: 'Shaw', given: ['Amy', 'V.'], period: { start: '2016-12-06', end: '2020-07-22' } }],
  telecom: [{ system: 'phone', value: '555-555-5555', use: 'home' }, { system: 'email', value: 'amy.shaw@example.com' }],
  gender: 'female', birthDate: '1987-02-20',
  address: [{ use: 'home', line: ['49 Meadow St'], city: 'Mounds', state: 'OK', postalCode: '74047', country: 'US' }],
  communication: [{ language: { coding: [{ system: 'urn:ietf:bcp:47', code: 'en-US', display: 'English (United States)' }] }, preferred: true }],
};
const answer = {
  status: 200, body: { inline_string: JSON.stringify(patient, null, 2) },
};
const answerHeaders = [
  ['content-type', 'application/fhir+json;charset=utf-8'],
  ['etag', 'W/"3"'],
  ['last-modified', 'Tue, 14 Oct 2026 09:21:44 GMT'],
  ['x-powered-by', 'HAPI FHIR 7.4.0 REST Server (FHIR Server; FHIR 4.0.1/R4)'],
  ['content-location', 'http://127.0.0.1:18000/fhir/Patient/123/_history/3'],
].map(([key, value]) => ({ header: { key, value } }));

// ---- Envoy bootstraps (JSON): one worker, the FHIR answer as a direct response, admin on 18001.
function bootstrap(filters) {
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
            route_config: { virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{
              match: { prefix: '/' }, direct_response: answer, response_headers_to_add: answerHeaders,
            }] }] },
            http_filters: [...filters, { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
          },
        }] }],
      }],
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
      jwt_cache_config: { jwt_cache_size: 10000 },
    } },
    rules: [{ match: { prefix: '/' }, requires: { provider_name: 'bench' } }],
  },
};
// The part of the policy RBAC can say: the token's scopes allow reading Patient.
const rbac = {
  name: 'envoy.filters.http.rbac',
  typed_config: {
    '@type': 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC',
    rules: { action: 'ALLOW', policies: { patient_scope: {
      permissions: [{ url_path: { path: { prefix: '/fhir/Patient' } } }],
      principals: [{ metadata: { filter: 'envoy.filters.http.jwt_authn', path: [{ key: 'jwt_payload' }, { key: 'scope' }], value: { string_match: { contains: 'patient/Patient.rs' } } } }],
    } } },
  },
};
function wasm(name, file, configuration) {
  return {
    name: 'envoy.filters.http.wasm',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm',
      config: {
        name, root_id: name, fail_open: false,
        // response checks pause the response headers until the body is checked (Envoy >= 1.35)
        allow_on_headers_stop_iteration: true,
        vm_config: { vm_id: name, runtime: 'envoy.wasm.runtime.v8', code: { local: { filename: file } } },
        configuration: { '@type': 'type.googleapis.com/google.protobuf.StringValue', value: configuration },
      },
    },
  };
}
fs.writeFileSync(path.join(out, 'envoy-alone.json'), JSON.stringify(bootstrap([])));
fs.writeFileSync(path.join(out, 'envoy-nop.json'), JSON.stringify(bootstrap([wasm('nop', process.env.WASM_NOP, '')])));
fs.writeFileSync(path.join(out, 'envoy-native.json'), JSON.stringify(bootstrap([jwtAuthn, rbac])));
fs.writeFileSync(path.join(out, 'envoy-fhirgate.json'), JSON.stringify(bootstrap([wasm('fhirgate', process.env.WASM, JSON.stringify(fhirgate))])));
if (process.env.WASM_SIZE && fs.existsSync(process.env.WASM_SIZE)) {
  fs.writeFileSync(path.join(out, 'envoy-fhirgate-size.json'), JSON.stringify(bootstrap([wasm('fhirgate', process.env.WASM_SIZE, JSON.stringify(fhirgate))])));
}
