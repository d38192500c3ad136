// The soak (README, "Soak"): real Envoy (two workers) with the built filter, the e2e IdP
// (oidc-provider), FHIR upstream and audit collector, a load generator driving tens of thousands
// of distinct device tokens at a steady rate while a fault timeline runs twice, then assertions
// and a table. Exit status 1 when an assertion fails.
//
//   node soak.mjs [--duration 540] [--rate 120] [--tokens 50000] [--opaque 600] [--out DIR]
//   node soak.mjs --short          (16 s, 80 req/s, 800 tokens: the variant in `make test`)
//
// Everything runs in this process except Envoy. Per request it records the scheduled time, the
// latency (from the scheduled time, so queueing in the client counts), the status, Retry-After,
// and the `x-request-id` it sent (Envoy keeps it and echoes it), which the audit records carry.
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { createPrivateKey, randomBytes, sign } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { startStack, baseConfig, introspectionConfig } from '../e2e/lib/stack.mjs';
import { startCollector } from '../e2e/lib/collector.mjs';
import { makeKeys } from '../e2e/lib/idp.mjs';
import { REPO } from '../e2e/lib/envoy.mjs';
import { buildTimeline, phaseAt } from './timeline.mjs';
import { check } from './checks.mjs';

function args(argv) {
  const short = argv.includes('--short');
  const out = {
    short,
    duration: short ? 16 : 540,
    rate: short ? 80 : 120,
    tokens: short ? 800 : 50_000,
    opaque: short ? 40 : 600,
    out: path.join(REPO, '.run', 'soak', short ? 'short' : 'long'),
  };
  for (let i = 0; i < argv.length; i += 1) {
    const m = /^--(duration|rate|tokens|opaque|out)$/.exec(argv[i]);
    if (m) {
      out[m[1]] = m[1] === 'out' ? argv[i + 1] : Number(argv[i + 1]);
      i += 1;
    }
  }
  return out;
}

/** A small deterministic PRNG (mulberry32), so a rerun drives the same mix. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PATIENTS = ['pat-alice', 'pat-bob', 'pat-carol'];
const b64u = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** Signs a JWT with one of the IdP's private JWKs (what its token endpoint would issue). */
class Minter {
  constructor(idp, audience) {
    this.idp = idp;
    this.audience = audience;
    this.objects = new Map();
    this.signing = idp.keys; // [rsa, ec]
  }

  rotate(keys) {
    this.signing = keys;
  }

  keyObject(jwk) {
    let k = this.objects.get(jwk.kid);
    if (!k) {
      k = createPrivateKey({ key: jwk, format: 'jwk' });
      this.objects.set(jwk.kid, k);
    }
    return k;
  }

  jwt(claims, { rsa = false, header = {}, keys = this.signing } = {}) {
    const jwk = rsa ? keys[0] : keys[1];
    const h = b64u({ alg: jwk.alg, typ: 'at+jwt', kid: jwk.kid, ...header });
    const p = b64u(claims);
    const data = Buffer.from(`${h}.${p}`);
    const key = this.keyObject(jwk);
    const sig = jwk.alg === 'ES256' ? sign('sha256', data, { key, dsaEncoding: 'ieee-p1363' }) : sign('sha256', data, key);
    return { token: `${h}.${p}.${sig.toString('base64url')}`, kid: jwk.kid };
  }

  device(i, nowS) {
    return this.jwt({
      iss: this.idp.issuer,
      aud: this.audience,
      sub: `device-${i}`,
      client_id: 'soak-device-app',
      scope: 'patient/*.rs',
      patient: PATIENTS[i % PATIENTS.length],
      iat: nowS,
      exp: nowS + 3600,
      jti: `soak-${i}-${randomBytes(4).toString('hex')}`,
    }, { rsa: i % 5 === 0 });
  }
}

/** Opaque tokens from the IdP's token endpoint: a few clients (one per patient), many tokens each. */
async function mintOpaque(idp, count) {
  const out = [];
  const per = Math.ceil(count / PATIENTS.length);
  for (const [pi, patient] of PATIENTS.entries()) {
    const client = await idp.registerClient({ format: 'opaque', ttl: 3600, claims: { patient } });
    const auth = `Basic ${Buffer.from(`${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.clientSecret)}`).toString('base64')}`;
    for (let i = 0; i < per && out.length < count; i += 1) {
      const res = await idp.post('/token', { grant_type: 'client_credentials', resource: idp.audience, scope: 'patient/*.rs' }, auth);
      if (res.status !== 200) throw new Error(`opaque token: ${res.status} ${JSON.stringify(res.body)}`);
      out.push({ token: res.body.access_token, patient, index: out.length, client: pi });
    }
  }
  return out;
}

/** Garbage and malformed requests, each with the statuses it may get. */
function garbageKinds(minter, idp, audience) {
  const nowS = () => Math.floor(Date.now() / 1000);
  const valid = () => minter.device(999_999_999, nowS()).token;
  return [
    { kind: 'garbage.opaque', allowed: [401], make: () => ({ auth: `Bearer ${randomBytes(24).toString('base64url')}` }) },
    { kind: 'garbage.bad_signature', allowed: [401], make: () => {
      const [h, p, s] = valid().split('.');
      return { auth: `Bearer ${h}.${p}.${s.slice(0, -4)}${s.slice(-4) === 'AAAA' ? 'BBBB' : 'AAAA'}` };
    } },
    { kind: 'garbage.alg_none', allowed: [401], make: () => {
      const [, p] = valid().split('.');
      return { auth: `Bearer ${b64u({ alg: 'none', typ: 'at+jwt' })}.${p}.` };
    } },
    { kind: 'garbage.not_json', allowed: [401], make: () => ({ auth: `Bearer ${b64u('{{{')}.${b64u('nope')}.${b64u('sig')}` }) },
    { kind: 'garbage.forged_kid', allowed: [401], make: () => ({
      auth: `Bearer ${minter.jwt({ iss: idp.issuer, aud: audience, sub: 'mallory', scope: 'patient/*.rs', patient: 'pat-alice', iat: nowS(), exp: nowS() + 600 }, { header: { kid: `forged-${randomBytes(3).toString('hex')}` }, keys: makeKeysOnce() }).token}`,
    }) },
    { kind: 'garbage.expired', allowed: [401], make: () => ({
      auth: `Bearer ${minter.jwt({ iss: idp.issuer, aud: audience, sub: 'old', scope: 'patient/*.rs', patient: 'pat-bob', iat: nowS() - 7200, exp: nowS() - 3600 }).token}`,
    }) },
    { kind: 'garbage.wrong_audience', allowed: [401], make: () => ({
      auth: `Bearer ${minter.jwt({ iss: idp.issuer, aud: 'https://elsewhere.example/fhir', sub: 'x', scope: 'patient/*.rs', patient: 'pat-bob', iat: nowS(), exp: nowS() + 600 }).token}`,
    }) },
    { kind: 'malformed.two_authorization', allowed: [400], make: () => ({ rawAuth: [`Bearer ${valid()}`, 'Bearer second'] }) },
    { kind: 'malformed.junk_after_token', allowed: [400], make: () => ({ auth: `Bearer ${valid()} trailing junk` }) },
    { kind: 'malformed.huge_token', allowed: [400, 431], make: () => ({ auth: `Bearer ${'a'.repeat(17 * 1024)}` }) },
    { kind: 'malformed.basic', allowed: [401], make: () => ({ auth: 'Basic dXNlcjpwYXNz' }) },
    { kind: 'malformed.no_credentials', allowed: [401], make: () => ({}) },
    { kind: 'malformed.encoded_slash', allowed: [400], make: () => ({ auth: `Bearer ${valid()}`, path: '/fhir/Patient/pat-alice%2F..%2Fpat-bob' }) },
    { kind: 'malformed.lowercase_type', allowed: [400], make: () => ({ auth: `Bearer ${valid()}`, path: '/fhir/patient/pat-alice' }) },
    { kind: 'malformed.outside_base', allowed: [404], make: () => ({ auth: `Bearer ${valid()}`, path: '/admin/secrets' }) },
    { kind: 'malformed.bad_percent', allowed: [400], make: () => ({ auth: `Bearer ${valid()}`, path: '/fhir/Patient/%zz' }) },
  ];
}

let forgedKeys;
function makeKeysOnce() {
  forgedKeys ??= makeKeys();
  return forgedKeys;
}

/** Sends malformed HTTP straight to the socket (Envoy's codec answers 400; no filter, no audit). */
function rawMalformed(port, text) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let data = '';
    const done = (status) => {
      s.destroy();
      resolve(status);
    };
    s.setTimeout(5000, () => done('timeout'));
    s.on('data', (c) => {
      data += c.toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(data);
      if (m) done(Number(m[1]));
    });
    s.on('error', () => done('reset'));
    s.on('close', () => done(data ? 'unparsed' : 'closed'));
    s.write(text);
  });
}

const RAW_MALFORMED = [
  'GET /fhir/Patient/pat-alice HTTP/1.1\r\nHost: x\r\nBad Header: \x01\r\n\r\n',
  'GET /fhir/Patient/pat-alice HTTP/9.9\r\nHost: x\r\n\r\n',
  'POST /fhir/Patient HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nzzzz\r\n',
  '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage-tls-hello\r\n\r\n',
];

/** Reads VmRSS (KiB) of a process. */
function rssKiB(pid) {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

function parsePrometheus(text) {
  const out = {};
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m && m[2] === undefined || m && m[2] === '{}') out[m[1]] = (out[m[1]] ?? 0) + Number(m[3]);
    else if (m) out[`${m[1]}${m[2]}`] = Number(m[3]);
  }
  return out;
}

async function main() {
  const opt = args(process.argv.slice(2));
  fs.mkdirSync(opt.out, { recursive: true });
  const tl = buildTimeline(opt.duration);
  const cfg = tl.config;
  const log = (...a) => console.log(`[soak ${((Date.now() - (t0 || Date.now())) / 1000).toFixed(1)}s]`, ...a);
  let t0 = 0;

  const collector = await startCollector();
  const consentRules = JSON.parse(fs.readFileSync(path.join(REPO, 'policies', 'sensitive-consent.json'), 'utf8')).rules;
  const filterConfig = (ctx) => baseConfig(ctx, {
    provider: {
      jwks: {
        remote: {
          cluster: 'idp', authority: `127.0.0.1:${ctx.idp.port}`, path: '/jwks',
          refresh: `${cfg.refreshS}s`, timeout: `${cfg.jwksTimeoutS}s`, maxStaleness: `${cfg.maxStalenessS}s`,
          minRefetchInterval: `${cfg.minRefetchS}s`,
        },
      },
      introspection: introspectionConfig(ctx.idp, {
        cacheTtl: `${cfg.cacheTtlS}s`, negativeCacheTtl: `${cfg.negativeCacheTtlS}s`, timeout: `${cfg.introspectionTimeoutS}s`,
      }),
    },
    rules: consentRules,
    cache: { maxEntries: cfg.cacheMaxEntries, sharedSlots: cfg.sharedSlots, replaySlots: cfg.replaySlots },
    retryAfter: '2s',
    audit: {
      subject: 'plain',
      collector: {
        cluster: 'audit', authority: `127.0.0.1:${collector.port}`, path: '/audit',
        batchSize: cfg.batchSize, flushInterval: '1s', maxQueue: cfg.maxQueue, maxQueueBytes: cfg.maxQueueBytes,
        timeout: `${cfg.collectorTimeoutS}s`, maxInFlight: cfg.maxInFlight,
      },
    },
  });
  const editBootstrap = (b) => {
    for (const l of b.static_resources.listeners) {
      for (const fc of l.filter_chains) {
        for (const f of fc.filters) {
          // Keep the load generator's x-request-id and echo it, to reconcile with the audit.
          f.typed_config.preserve_external_request_id = true;
          f.typed_config.always_set_request_id_in_response = true;
          // How long the request was held before it went upstream (the filter's decision time,
          // waits for keys or introspection included); "-" for requests answered by the filter.
          for (const al of f.typed_config.access_log ?? []) {
            al.typed_config.log_format.json_format.held_ms = '%COMMON_DURATION(DS_RX_BEG:US_TX_BEG:ms)%';
          }
        }
      }
    }
    // Envoy closes idle upstream connections before Node's servers do (their keep-alive timeout
    // is 5 s): otherwise a request can go out on a connection the server is closing, and get a
    // 503 from Envoy (a race of the test servers, not of the filter).
    for (const c of b.static_resources.clusters) {
      c.typed_extension_protocol_options = {
        'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
          '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
          common_http_protocol_options: { idle_timeout: '3s' },
          explicit_http_config: { http_protocol_options: {} },
        },
      };
    }
    return b;
  };
  const stack = await startStack({ config: filterConfig, clusters: { audit: collector.port }, editBootstrap });
  const { idp, fhir, envoy, audience } = stack;
  let exitCode = 1;
  try {
    // Slow, but well under the introspection timeout (1 s), also on a busy CI machine.
    idp.faults.introspectionDelayMs = opt.short ? 200 : 400;
    const minter = new Minter(idp, audience);
    console.log(`minting ${opt.opaque} opaque tokens at the IdP's token endpoint ...`);
    const opaque = await mintOpaque(idp, opt.opaque);
    const garbage = garbageKinds(minter, idp, audience);
    // Key generation blocks the event loop (RSA): done before the clock starts.
    const rotationKeys = tl.rotations.map(() => makeKeys());
    makeKeysOnce();
    const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
    const pid = envoy.child.pid;
    const statsBefore = parsePrometheus((await envoy.admin('/stats/prometheus')).text);
    const rssReady = rssKiB(pid);

    const results = [];
    const devices = []; // index -> { token, kid, mintedAt, patient }
    const rand = rng(16);
    let fresh = 0;
    let garbageSent = 0;
    const expectedJwt = opt.rate * opt.duration * 0.84;
    const pNew = Math.min(1, opt.tokens / expectedJwt);
    const raw = [];
    const rotations = [];
    const events = [];
    const send = (n, spec) => new Promise((resolve) => {
      const id = `soak-${n}`;
      const headers = { 'x-request-id': id };
      if (spec.auth) headers.authorization = spec.auth;
      if (spec.rawAuth) headers.authorization = spec.rawAuth;
      const r = { n, id, at: spec.at, kind: spec.kind, expect: spec.expect, token: spec.tokenRef, kid: spec.kid };
      results.push(r);
      let settled = false;
      const finish = (status, res) => {
        if (settled) return;
        settled = true;
        r.ms = performance.now() - spec.hr;
        r.status = status;
        if (res) {
          r.retryAfter = res.headers['retry-after'];
          r.echo = res.headers['x-request-id'];
        }
        resolve();
      };
      const req = http.request({
        host: '127.0.0.1', port: envoy.listenPort, path: spec.path, method: 'GET', headers, agent, timeout: cfg.clientTimeoutMs,
      }, (res) => {
        res.on('data', () => {});
        res.on('end', () => finish(res.statusCode, res));
        res.on('error', () => finish('reset', res));
        res.on('aborted', () => finish('reset', res));
      });
      req.on('timeout', () => {
        finish('timeout');
        req.destroy();
      });
      req.on('error', () => finish('reset'));
      req.end();
    });

    // Fault driver: applies the phase in force at each moment.
    let applied = {};
    const applyPhase = async (state) => {
      if (state.jwks !== applied.jwks) idp.faults.jwks = state.jwks;
      if (state.introspection !== applied.introspection) idp.faults.introspection = state.introspection;
      if (state.collector !== applied.collector) {
        if (state.collector === 'down') await collector.stop();
        else {
          if (applied.collector === 'down') await collector.start();
          collector.mode = state.collector;
        }
      }
      if (state.upstream !== applied.upstream) {
        fhir.faults = state.upstream === 'faulty'
          ? { errorEvery: 9, truncateEvery: 13 } : { errorEvery: 0, truncateEvery: 0 };
      }
      if (state.rotation !== applied.rotation && state.rotation > 0) {
        const keys = idp.publishKeys(rotationKeys.shift() ?? makeKeys());
        minter.rotate(keys);
        rotations.push({ at: Date.now(), kids: keys.map((k) => k.kid) });
      }
      for (const k of ['jwks', 'introspection', 'collector', 'upstream', 'garbage']) {
        if (state[k] !== applied[k]) events.push({ at: Date.now(), what: `${k}=${state[k]}` });
      }
      applied = state;
    };

    const samples = [];
    // This process's event-loop delay (it runs the IdP, the upstream and the load generator):
    // high values mean the machine, not Envoy, held requests back.
    const lag = monitorEventLoopDelay({ resolution: 10 });
    lag.enable();
    t0 = Date.now();
    const hr0 = performance.now();
    const interval = 1000 / opt.rate;
    const inflight = new Set();
    let n = 0;
    let lastSample = t0;
    let lastSampleN = 0;
    log(`load: ${opt.rate} req/s for ${opt.duration}s, up to ${opt.tokens} device tokens (p_new ${pNew.toFixed(2)}), ${opaque.length} opaque`);
    while (true) {
      const elapsed = (performance.now() - hr0) / 1000;
      if (elapsed >= opt.duration) break;
      const state = phaseAt(tl, elapsed);
      await applyPhase(state);
      // Catch up on every slot due by now (open loop: the schedule never waits for answers).
      const due = Math.floor((performance.now() - hr0) / interval);
      while (n < due) {
        const hrAt = hr0 + n * interval;
        const at = t0 + n * interval;
        const spec = { at, hr: hrAt };
        const x = rand();
        if (state.garbage && x < 0.5) {
          const g = garbage[n % garbage.length];
          Object.assign(spec, g.make(), { kind: g.kind, expect: g.allowed });
          garbageSent += 1;
          if (garbageSent % 10 === 0) raw.push(rawMalformed(envoy.listenPort, RAW_MALFORMED[raw.length % RAW_MALFORMED.length]));
        } else if (state.garbage ? x < 0.6 : x < 0.1) {
          const o = opaque[Math.floor(rand() * opaque.length)];
          Object.assign(spec, {
            kind: 'opaque.read', auth: `Bearer ${o.token}`, path: `/fhir/Patient/${o.patient}`, expect: [200], tokenRef: `o${o.index}`,
          });
        } else {
          let d;
          if (fresh < opt.tokens && (rand() < pNew || fresh === 0)) {
            const nowS = Math.floor(at / 1000);
            const m = minter.device(fresh, nowS);
            d = { index: fresh, token: m.token, kid: m.kid, patient: PATIENTS[fresh % PATIENTS.length], mintedAt: at, rotation: rotations.length };
            devices.push(d);
            fresh += 1;
          } else {
            d = devices[Math.floor(rand() * devices.length)];
          }
          const y = rand();
          const other = PATIENTS[(PATIENTS.indexOf(d.patient) + 1) % PATIENTS.length];
          const [kind, p, expect] = y < 0.7 ? ['jwt.read', `/fhir/Patient/${d.patient}`, [200]]
            : y < 0.9 ? ['jwt.search', `/fhir/Observation?patient=${d.patient}&category=vital-signs`, [200]]
              : ['jwt.other_patient', `/fhir/Patient/${other}`, [403]];
          Object.assign(spec, { kind, auth: `Bearer ${d.token}`, path: p, expect, tokenRef: `d${d.index}`, kid: d.kid, rotation: d.rotation });
        }
        const pr = send(n, spec);
        inflight.add(pr);
        pr.then(() => inflight.delete(pr));
        n += 1;
      }
      const now = Date.now();
      if (now - lastSample >= 1000) {
        samples.push({
          t: (now - t0) / 1000, rssKiB: rssKiB(pid), sent: n - lastSampleN, inflight: inflight.size, lagMaxMs: lag.max / 1e6,
        });
        lag.reset();
        lastSample = now;
        lastSampleN = n;
        if (samples.length % 15 === 0) log(`${n} sent, ${inflight.size} in flight, rss ${Math.round((samples.at(-1).rssKiB ?? 0) / 1024)} MiB`);
      }
      await sleep(Math.max(1, interval / 2));
    }
    log(`schedule done: ${n} requests; waiting for ${inflight.size} answers`);
    await applyPhase({ ...phaseAt(tl, 0), rotation: applied.rotation });
    await Promise.all([...inflight]);
    const rawStatuses = await Promise.all(raw);
    // Let every worker flush its audit queue (flushInterval 1 s, a tick) and metrics.
    const drainDeadline = Date.now() + 20_000;
    let stats;
    while (true) {
      await sleep(1500);
      stats = parsePrometheus((await envoy.admin('/stats/prometheus')).text);
      if ((stats.fhirgate_audit_queue_depth ?? 0) === 0 || Date.now() > drainDeadline) break;
    }
    await sleep(1500);
    stats = parsePrometheus((await envoy.admin('/stats/prometheus')).text);
    samples.push({ t: (Date.now() - t0) / 1000, rssKiB: rssKiB(pid), sent: 0, inflight: 0 });
    const report = check({
      opt, tl, cfg, t0, results, devices, opaque, samples, rssReady, statsBefore, stats, rotations, events,
      rawStatuses, auditLog: envoy.auditRecords(), accessLog: envoy.accessLog(), envoyLog: envoy.log(), collector, idp, fhir,
      envoyAlive: envoy.child.exitCode === null && envoy.child.signalCode === null,
    });
    fs.writeFileSync(path.join(opt.out, 'report.json'), JSON.stringify(report.json, null, 2));
    fs.writeFileSync(path.join(opt.out, 'report.md'), report.markdown);
    fs.writeFileSync(path.join(opt.out, 'timeseries.csv'), report.csv);
    fs.writeFileSync(path.join(opt.out, 'requests.ndjson'), results.map((r) => JSON.stringify({
      id: r.id, t: Number(((r.at - t0) / 1000).toFixed(3)), kind: r.kind, token: r.token, kid: r.kid, status: r.status,
      ms: Number(r.ms?.toFixed(1)), retryAfter: r.retryAfter, upstreamFault: fhir.faulted.get(r.id),
    })).join('\n'));
    console.log(report.markdown);
    console.log(`\nreport: ${opt.out}/report.md, timeseries.csv`);
    exitCode = report.ok ? 0 : 1;
    agent.destroy();
  } finally {
    await stack.stop();
    await collector.stop();
  }
  process.exit(exitCode);
}

main().catch((err) => {
  console.error(err);
  process.exit(2);
});
