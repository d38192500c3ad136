// The soak's assertions, its table and its time series (README, "Soak").
import { windowsOf } from './timeline.mjs';

const KiB = 1024;
const MiB = 1024 * 1024;

/**
 * The RSS bound, from the configuration (every term is a configured size times a stated entry
 * size): Envoy's RSS once ready (measured: binary, V8 and the compiled module, both workers'
 * VMs) plus, per worker, the three token caches, the audit queue and the batches in flight
 * (twice, for the allocator: Wasm linear memory never shrinks), plus the shared-data rings and
 * the connection buffers.
 */
export function rssBound(cfg, readyKiB, { workers = 2, connections = 64 } = {}) {
  const entry = 4 * KiB; // a cached VerifiedToken of these tokens (claims < 1 KiB serialized), generously
  const perWorker = cfg.cacheMaxEntries * entry * 2 // verified-token cache + introspection cache
    + cfg.cacheMaxEntries * 128 // negative introspection cache (hash, expiry, error)
    + cfg.maxQueueBytes // audit queue
    + cfg.maxInFlight * MiB; // batches in flight (a batch closes at 1 MiB)
  const slot = 2 * KiB; // hash ‖ serialized token of these tokens, plus Envoy's key
  const shared = cfg.sharedSlots * slot * 2 // token ring + introspection ring
    + cfg.replaySlots * 513; // DPoP jti replay cache (unused here, bounded anyway)
  const conns = connections * 2 * 64 * KiB * 2; // downstream + upstream, read/write buffers
  const terms = {
    readyMiB: readyKiB / 1024,
    perWorkerMiB: perWorker / MiB,
    workers,
    allocatorFactor: 2,
    sharedMiB: shared / MiB,
    connectionsMiB: conns / MiB,
  };
  const boundKiB = readyKiB + (workers * perWorker * 2 + shared + conns) / KiB;
  return { boundKiB, terms };
}

function answered0(results) {
  return results.filter((r) => typeof r.status === 'number');
}

function pct(sorted, p) {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function countBy(items, f) {
  const m = new Map();
  for (const i of items) {
    const k = f(i);
    m.set(k, (m.get(k) ?? 0) + 1);
  }
  return m;
}

/** Upstream trouble per cluster, from Envoy's own counters. */
function clusterLine(stats) {
  const names = ['upstream_rq_timeout', 'upstream_cx_destroy_remote_with_active_rq', 'upstream_rq_pending_overflow',
    'upstream_cx_connect_fail', 'upstream_rq_rx_reset', 'upstream_rq_tx_reset'];
  const parts = [];
  for (const c of ['idp', 'fhir', 'audit']) {
    const vals = names.map((n) => [n, stats[`envoy_cluster_${n}{envoy_cluster_name="${c}"}`] ?? 0]).filter(([, v]) => v > 0);
    parts.push(`${c}: ${vals.length ? vals.map(([n, v]) => `${n.replace('upstream_', '')} ${v}`).join(', ') : 'none'}`);
  }
  return parts.join('; ');
}

/** Runs every assertion; returns `{ ok, markdown, json, csv }`. */
export function check(run) {
  const {
    opt, tl, cfg, t0, results, devices, opaque, samples, rssReady, statsBefore, stats, rotations, events,
    rawStatuses, auditLog, accessLog, envoyLog, collector, idp, fhir, envoyAlive,
  } = run;
  const failures = [];
  const fail = (what, detail) => failures.push(`${what}: ${detail}`);
  const rel = (ms) => (ms - t0) / 1000;
  const metric = (name) => stats[`fhirgate_${name}`] ?? 0;

  // ---- answers
  const byStatus = countBy(results, (r) => r.status ?? 'none');
  const timeouts = results.filter((r) => r.status === 'timeout' || r.status === undefined);
  if (timeouts.length > 0) fail('missing answers', `${timeouts.length} requests got no answer (first ${timeouts[0].id})`);
  const faulted = fhir.faulted;
  const jwksBack = windowsOf(tl, 'jwks', 'hang').map((w) => w.end);
  const oneRefreshMs = (cfg.refreshS + cfg.jwksTimeoutS + 2) * 1000;
  const downWindows = windowsOf(tl, 'introspection', 'down');
  const slackS = cfg.introspectionTimeoutS + 2;
  const inDown = (r) => downWindows.some((w) => rel(r.at) >= w.start - 0.5 && rel(r.at) <= w.end + slackS);
  const counts = {
    opaque503IdpLate: 0, jwt401: 0, jwt503: 0, jwtNewKid503: 0, jwtNewKid: 0, jwtNewKidOk: 0, opaque503: 0, opaque503OutsideDown: 0,
    upstreamFaulted: 0, resetsUnfaulted: 0, unexpected: 0, opaque503CachedRecently: 0,
  };
  const unexpectedSamples = [];
  const lateIntro = idp.introspectionLog.filter((e) => !e.finished || e.ms >= cfg.introspectionTimeoutS * 1000);
  // The IdP may only see a request after Envoy gave up on it (its event loop was late): allow
  // the largest event-loop delay measured after the answer.
  const lagSlack = Math.max(0, ...samples.map((x) => x.lagMaxMs ?? 0));
  const idpLate = (r) => lateIntro.some((e) => e.at >= r.at - 200 && e.at <= r.at + r.ms + lagSlack);
  const lastOk = new Map(); // opaque token -> completion time of its last 200
  const sorted = [...results].sort((a, b) => a.at - b.at);
  for (const r of sorted) {
    const isFaulted = faulted.has(r.id);
    if (isFaulted) counts.upstreamFaulted += 1;
    const okStatus = r.expect.includes(r.status);
    if (r.kind.startsWith('jwt.')) {
      const newKid = rotations.some((rot) => rot.kids.includes(r.kid));
      if (newKid) counts.jwtNewKid += 1;
      if (newKid && okStatus) counts.jwtNewKidOk += 1;
      if (r.status === 401) counts.jwt401 += 1;
      if (r.status === 503) counts.jwt503 += 1;
      if (okStatus || (isFaulted && (r.status === 'reset' || r.status >= 500))) continue;
      // A new kid while the JWKS endpoint fails cannot be checked: 503 + Retry-After (never 401)
      // until the endpoint is back, and accepted within one refresh after that.
      const c = rotations.findIndex((rot) => rot.kids.includes(r.kid));
      if (r.status === 503 && r.retryAfter && c >= 0
        && rel(r.at) >= tl.rotations[c] - 0.5 && rel(r.at) <= jwksBack[c] + oneRefreshMs / 1000) {
        counts.jwtNewKid503 += 1;
        continue;
      }
    } else if (r.kind === 'opaque.read') {
      if (r.status === 200) lastOk.set(r.token, r.at + r.ms);
      if (r.status === 503) {
        counts.opaque503 += 1;
        if (!r.retryAfter) fail('opaque 503 without Retry-After', r.id);
        // Outside the outage, the IdP itself may have answered past the timeout (it shares this
        // process and the machine): such an answer is an outage as the filter sees it.
        if (!inDown(r) && idpLate(r)) {
          counts.opaque503IdpLate += 1;
          continue;
        }
        if (!inDown(r)) counts.opaque503OutsideDown += 1;
        const last = lastOk.get(r.token);
        if (last !== undefined && r.at - last < (cfg.cacheTtlS - 1) * 1000) counts.opaque503CachedRecently += 1;
        if (inDown(r)) continue;
      }
      if (okStatus || (isFaulted && (r.status === 'reset' || r.status >= 500))) continue;
    } else if (okStatus) {
      continue;
    }
    if (r.status === 'reset' && !isFaulted) counts.resetsUnfaulted += 1;
    counts.unexpected += 1;
    if (unexpectedSamples.length < 8) unexpectedSamples.push(`${r.id} ${r.kind} t=${rel(r.at).toFixed(1)}s -> ${r.status}`);
  }
  if (counts.jwt401 > 0) fail('a valid JWT got 401', `${counts.jwt401}`);
  if (counts.unexpected > 0) fail('unexpected answers', `${counts.unexpected}: ${unexpectedSamples.join('; ')}`);
  if (counts.opaque503OutsideDown > 0) fail('opaque 503 outside the introspection outage', `${counts.opaque503OutsideDown}`);
  if (counts.jwtNewKid > 0 && counts.jwtNewKidOk === 0) fail('rotation', 'no token with a new kid was accepted');
  for (const r of results) if (r.status !== 'reset' && r.echo !== undefined && r.echo !== r.id) {
    fail('x-request-id not kept', r.id);
    break;
  }

  // ---- latency bound (the filter waits at most for one JWKS fetch or one introspection, each
  // bounded by its timeout, plus the tick that resumes a stream on another worker)
  // Asserted on Envoy's own duration (access log %DURATION%: first request byte to last response
  // byte); the client's latency also counts its own queueing and this process's event loop.
  // The filter's own bounds (src/core/engine/exec.rs): a stream waits for keys at most
  // 2 × (JWKS timeout + 1 s) + one tick (1 s), for an introspection at most its timeout + 5 s of
  // grace (CALLOUT_GRACE_MS, for a callout the proxy never answers); a request waits for one
  // or the other, never both. Asserted on how long Envoy held each
  // request before it went upstream (%COMMON_DURATION(DS_RX_BEG:US_TX_BEG)%), or on its whole
  // duration when the filter answered it: the upstream's own time is not the filter's.
  const boundMs = Math.max(2 * (cfg.jwksTimeoutS * 1000 + 1000) + 1000, cfg.introspectionTimeoutS * 1000 + 5000);
  const lat = results.filter((r) => typeof r.ms === 'number').map((r) => r.ms).sort((a, b) => a - b);
  const envoyMs = new Map();
  const heldMs = new Map();
  for (const a of accessLog) {
    if (!a.request_id) continue;
    envoyMs.set(a.request_id, Number(a.duration_ms));
    const held = Number(a.held_ms);
    heldMs.set(a.request_id, Number.isFinite(held) && a.held_ms !== null ? held : Number(a.duration_ms));
  }
  const withEnvoy = answered0(results).filter((r) => envoyMs.has(r.id));
  const envoyLat = withEnvoy.map((r) => envoyMs.get(r.id)).sort((a, b) => a - b);
  const heldLat = withEnvoy.map((r) => heldMs.get(r.id)).sort((a, b) => a - b);
  const noAccessLog = answered0(results).length - withEnvoy.length;
  const overBound = withEnvoy.filter((r) => heldMs.get(r.id) > boundMs);
  const clientOver = results.filter((r) => r.ms > boundMs).length;
  if (overBound.length > 0) fail('requests held past the bound', `${overBound.length} over ${boundMs} ms (max ${heldLat.at(-1)} ms)`);
  if (noAccessLog > 0) fail('answered requests missing from the access log', `${noAccessLog}`);
  const lagMax = Math.max(0, ...samples.map((x) => x.lagMaxMs ?? 0));

  // ---- audit: log (record of truth) and collector reconciled
  const logCount = countBy(auditLog, (a) => a.requestId);
  const ours = new Set(results.map((r) => r.id));
  const answered = results.filter((r) => typeof r.status === 'number');
  let auditMissing = 0;
  let auditDup = 0;
  for (const r of answered) {
    const c = logCount.get(r.id) ?? 0;
    if (c === 0) auditMissing += 1;
    if (c > 1) auditDup += 1;
  }
  const resets = results.filter((r) => r.status === 'reset');
  const resetsWithRecord = resets.filter((r) => logCount.get(r.id) === 1).length;
  const foreign = [...logCount.keys()].filter((id) => !ours.has(id)).length;
  if (auditMissing > 0) fail('answered requests without an audit record', `${auditMissing}`);
  if (auditDup > 0) fail('answered requests with several audit records', `${auditDup}`);
  if (foreign > 0) fail('audit records for requests never sent', `${foreign}`);
  const seen = new Map();
  let shippedSeen = 0;
  let failedSeen = 0;
  for (const b of collector.batches) {
    for (const rec of b.records) seen.set(rec.requestId, (seen.get(rec.requestId) ?? 0) + 1);
    if (b.answered === 'ok') shippedSeen += b.records.length;
    else failedSeen += b.records.length;
  }
  const collectorDup = [...seen.values()].filter((c) => c > 1).length;
  const collectorUnknown = [...seen.keys()].filter((id) => !logCount.has(id)).length;
  const notAtCollector = auditLog.filter((a) => !seen.has(a.requestId)).length;
  const shipped = metric('audit_records_shipped_total');
  const failedM = metric('audit_records_failed_total');
  const dropped = metric('audit_records_dropped_total');
  const depth = metric('audit_queue_depth');
  if (collectorDup > 0) fail('records received twice by the collector', `${collectorDup}`);
  if (collectorUnknown > 0) fail('collector records not in the log', `${collectorUnknown}`);
  if (shipped !== shippedSeen) fail('shipped counter vs collector', `metric ${shipped}, collector acknowledged ${shippedSeen}`);
  if (notAtCollector !== dropped + (failedM - failedSeen)) {
    fail('records missing at the collector vs counters', `${notAtCollector} missing; dropped ${dropped} + failed-unseen ${failedM - failedSeen}`);
  }
  if (shipped + failedM + dropped !== auditLog.length) {
    fail('shipped + failed + dropped vs log records', `${shipped} + ${failedM} + ${dropped} != ${auditLog.length}`);
  }
  if (depth !== 0) fail('audit queue not drained', `${depth}`);

  // ---- memory
  const bound = rssBound(cfg, rssReady);
  const rss = samples.filter((s) => s.rssKiB !== undefined);
  const peak = Math.max(...rss.map((s) => s.rssKiB));
  const c1 = rss.filter((s) => s.t < tl.cycle);
  const c2 = rss.filter((s) => s.t >= tl.cycle);
  const c1Max = Math.max(...c1.map((s) => s.rssKiB));
  const c2Max = c2.length ? Math.max(...c2.map((s) => s.rssKiB)) : c1Max;
  const growthKiB = c2Max - c1Max;
  const growthAllowed = Math.max(4 * 1024, c1Max * 0.03);
  if (peak > bound.boundKiB) fail('RSS over the bound', `${Math.round(peak / 1024)} MiB > ${Math.round(bound.boundKiB / 1024)} MiB`);
  if (growthKiB > growthAllowed) fail('RSS grew in the second cycle', `${Math.round(growthKiB / 1024)} MiB (allowed ${Math.round(growthAllowed / 1024)} MiB)`);

  // ---- panics, VM restarts
  const badLines = envoyLog.split('\n').filter((l) => !l.includes('fhirgate.audit ')
    && /panic|\[critical\]|wasm.*(crash|restart|reload)|VM .*fail|Failed to (load|create|start)|segfault|out of memory/i.test(l));
  if (badLines.length > 0) fail('Envoy log', `${badLines.length} lines, first: ${badLines[0].slice(0, 200)}`);
  const wasmKeys = Object.keys(stats).filter((k) => /wasm/.test(k) && !/fhirgate_/.test(k));
  const wasmDelta = {};
  for (const k of wasmKeys) if ((stats[k] ?? 0) !== (statsBefore[k] ?? 0)) wasmDelta[k] = `${statsBefore[k] ?? 0} -> ${stats[k]}`;
  const vmCreatedDelta = Object.entries(wasmDelta).filter(([k]) => /created|active|vm_count|restart|reload|fail/i.test(k));
  if (vmCreatedDelta.length > 0) fail('Wasm VM stats changed', JSON.stringify(Object.fromEntries(vmCreatedDelta)));
  if (!envoyAlive) fail('Envoy', 'exited during the run');

  // ---- IdP calls
  const jwksIdp = idp.jwksLog.filter((e) => e.at >= t0);
  // Envoy's counter and the IdP's log both count from Envoy's start (the run's window is a subset).
  const jwksMetric = metric('jwks_fetches_total');
  const jwksIdpAll = idp.jwksLog.length;
  const perWindow = countBy(jwksIdp, (e) => Math.floor((e.at - t0) / (cfg.refreshS * 1000)));
  const maxPerRefresh = Math.max(0, ...perWindow.values());
  const failingS = windowsOf(tl, 'jwks', 'fail').concat(windowsOf(tl, 'jwks', 'hang')).reduce((s, w) => s + (w.end - w.start), 0);
  const jwksBound = Math.ceil(opt.duration / cfg.refreshS) + Math.ceil(opt.duration / cfg.minRefetchS)
    + Math.ceil(failingS / 2) + 2;
  const perRefreshBound = 2 + Math.ceil(cfg.refreshS / 2);
  if (jwksIdp.length > jwksBound) fail('JWKS fetches', `${jwksIdp.length} > bound ${jwksBound}`);
  if (maxPerRefresh > perRefreshBound) fail('JWKS fetches per refresh period', `${maxPerRefresh} > ${perRefreshBound}`);
  if (jwksMetric !== jwksIdpAll) fail('JWKS fetches since start: metric vs IdP', `${jwksMetric} vs ${jwksIdpAll}`);
  // Recovery: the first good JWKS answer after each outage, within one refresh.
  const recoveries = jwksBack.map((b) => {
    const first = jwksIdp.find((e) => rel(e.at) >= b && e.answered === 200);
    return first ? rel(first.at) - b : Infinity;
  });
  for (const d of recoveries) if (d > cfg.refreshS + cfg.jwksTimeoutS + 1) fail('JWKS recovery', `${d.toFixed(1)} s after the IdP came back`);
  const usedOpaque = new Set(results.filter((r) => r.kind === 'opaque.read').map((r) => r.token)).size;
  const garbageOpaque = results.filter((r) => r.kind === 'garbage.opaque').length;
  const distinctOpaque = usedOpaque + garbageOpaque;
  const introBound = Math.ceil(distinctOpaque * (1 + opt.duration / cfg.cacheTtlS));
  const introIdp = idp.introspections;
  const introMetric = metric('introspection_calls_total');
  if (introIdp > introBound) fail('introspection calls', `${introIdp} > bound ${introBound}`);

  // ---- time series (per second of completion)
  const buckets = new Map();
  for (const r of results) {
    if (typeof r.ms !== 'number') continue;
    const s = Math.floor((r.at - t0 + r.ms) / 1000);
    const b = buckets.get(s) ?? { n: 0, lat: [], elat: [], s5xx: 0, s401: 0, s503: 0 };
    b.n += 1;
    b.lat.push(r.ms);
    if (envoyMs.has(r.id)) b.elat.push(envoyMs.get(r.id));
    if (r.status === 401) b.s401 += 1;
    if (r.status === 503) b.s503 += 1;
    if (r.status === 'reset' || r.status >= 500) b.s5xx += 1;
    buckets.set(s, b);
  }
  const lines = ['t_s,rps,p50_ms,p99_ms,rss_mib,s401,s503,s5xx_or_reset,loop_lag_max_ms,envoy_p99_ms'];
  for (const s of [...buckets.keys()].sort((a, b) => a - b)) {
    const b = buckets.get(s);
    b.lat.sort((x, y) => x - y);
    b.elat.sort((x, y) => x - y);
    const sample = rss.reduce((best, x) => (Math.abs(x.t - s) < Math.abs(best.t - s) ? x : best), rss[0]);
    lines.push([s, b.n, pct(b.lat, 50).toFixed(1), pct(b.lat, 99).toFixed(1), (sample.rssKiB / 1024).toFixed(1), b.s401, b.s503, b.s5xx, (sample.lagMaxMs ?? 0).toFixed(0), pct(b.elat, 99)].join(','));
  }

  // ---- table
  const statusLine = [...byStatus.entries()].sort((a, b) => String(a[0]).localeCompare(String(b[0])))
    .map(([s, c]) => `${s}: ${c}`).join(', ');
  const kinds = [...countBy(results, (r) => r.kind).entries()].sort().map(([k, c]) => `${k} ${c}`).join(', ');
  const mib = (k) => (k / 1024).toFixed(0);
  const rows = [
    ['run', `${opt.duration} s, ${opt.rate} req/s scheduled, Envoy --concurrency 2, two fault cycles of ${tl.cycle} s`],
    ['requests', `${results.length} sent (${kinds}); ${rawStatuses.length} raw malformed HTTP (${[...countBy(rawStatuses, (s) => s).entries()].map(([s, c]) => `${s}: ${c}`).join(', ')})`],
    ['tokens', `${devices.length} distinct device JWTs (ES256, 1 in 5 RS256; ${devices.filter((d) => d.rotation > 0).length} with a rotated kid), ${usedOpaque} opaque from oidc-provider, ${garbageOpaque} garbage opaque`],
    ['faults', `JWKS 500, JWKS hang, rotation (new kid), introspection slow (${idp.faults.introspectionDelayMs} ms), introspection down, collector down, collector hang, garbage burst, upstream 500 + truncated (${counts.upstreamFaulted} requests): each twice`],
    ['answers by status', statusLine],
    ['valid JWTs refused', `401: ${counts.jwt401}; 503: ${counts.jwt503} (all of them a new kid while the JWKS endpoint hung, or within one refresh after: ${counts.jwtNewKid503}); new-kid requests ${counts.jwtNewKid}, accepted ${counts.jwtNewKidOk}`],
    ['opaque 503 + Retry-After', `${counts.opaque503}; outside the introspection outage while the IdP answered an introspection past the timeout (${lateIntro.length} such answers at the IdP): ${counts.opaque503IdpLate}; otherwise outside it: ${counts.opaque503OutsideDown}; of them a 200 for the same token < cacheTtl before (shared ring collision or other worker): ${counts.opaque503CachedRecently}`],
    ['unexpected answers', `${counts.unexpected}; resets without an upstream fault: ${counts.resetsUnfaulted}; upstream-faulted requests: ${counts.upstreamFaulted}, resets ${resets.length} (with an audit record: ${resetsWithRecord})`],
    ['latency (client)', `p50 ${pct(lat, 50).toFixed(1)} ms, p99 ${pct(lat, 99).toFixed(1)} ms, p99.9 ${pct(lat, 99.9).toFixed(1)} ms, max ${lat.length ? lat.at(-1).toFixed(0) : 0} ms (over the bound: ${clientOver}); this process's event loop delay max ${lagMax.toFixed(0)} ms`],
    ['latency (Envoy)', `whole request p50 ${pct(envoyLat, 50)} ms, p99 ${pct(envoyLat, 99)} ms, max ${envoyLat.at(-1) ?? 0} ms; held by the filter p50 ${pct(heldLat, 50)} ms, p99 ${pct(heldLat, 99)} ms, max ${heldLat.at(-1) ?? 0} ms; bound ${boundMs} ms, over it: ${overBound.length}`],
    ['audit log', `${auditLog.length} records; answered requests without one: ${auditMissing}, with several: ${auditDup}; records for unknown ids: ${foreign}`],
    ['audit collector', `received ${[...seen.keys()].length} (acknowledged ${shippedSeen}, in failed batches ${failedSeen}), duplicates ${collectorDup}; not at the collector ${notAtCollector} = dropped ${dropped} + failed unseen ${failedM - failedSeen}`],
    ['audit counters', `shipped ${shipped} + failed ${failedM} + dropped ${dropped} = ${shipped + failedM + dropped} (log ${auditLog.length}); queue depth at end ${depth}`],
    ['RSS (Envoy)', `ready ${mib(rssReady)} MiB, peak ${mib(peak)} MiB, end ${mib(rss.at(-1).rssKiB)} MiB; cycle 1 max ${mib(c1Max)}, cycle 2 max ${mib(c2Max)} (growth ${(growthKiB / 1024).toFixed(1)} MiB, allowed ${mib(growthAllowed)}); bound ${mib(bound.boundKiB)} MiB`],
    ['panics / VM restarts', `Envoy log lines: ${badLines.length}; Wasm VM stat changes: ${vmCreatedDelta.length}; Envoy alive: ${envoyAlive}`],
    ['JWKS fetches', `${jwksIdp.length} at the IdP during the run (since Envoy's start: IdP ${jwksIdpAll}, metric ${jwksMetric}), bound ${jwksBound}; max per refresh period (${cfg.refreshS} s) ${maxPerRefresh}, bound ${perRefreshBound}; first good fetch after each outage +${recoveries.map((d) => d.toFixed(1)).join(' s, +')} s`],
    ['introspection calls', `${introIdp} at the IdP (metric ${introMetric}); bound ${distinctOpaque} distinct opaque × (1 + ${opt.duration}/${cfg.cacheTtlS}) = ${introBound}`],
    ['Envoy clusters', clusterLine(stats)],
    ['result', failures.length === 0 ? 'PASS' : `FAIL (${failures.length})`],
  ];
  const markdown = [
    '| | |',
    '|---|---|',
    ...rows.map(([k, v]) => `| ${k} | ${v} |`),
    '',
    ...failures.map((f) => `- FAIL ${f}`),
  ].join('\n');
  const json = {
    options: opt, config: cfg, windows: tl.windows, rotations: tl.rotations, cycle: tl.cycle, events: events.map((e) => ({ t: rel(e.at), what: e.what })),
    tokens: { devices: devices.length, opaque: usedOpaque }, requests: results.length,
    counts, byStatus: Object.fromEntries(byStatus), boundMs, envoyP99Ms: pct(envoyLat, 99), envoyMaxMs: envoyLat.at(-1) ?? 0, heldMaxMs: heldLat.at(-1) ?? 0, lagMaxMs: lagMax, rss: { readyKiB: rssReady, peakKiB: peak, c1MaxKiB: c1Max, c2MaxKiB: c2Max, bound },
    audit: { log: auditLog.length, shipped, failed: failedM, dropped, shippedSeen, failedSeen, notAtCollector, collectorDup },
    jwks: { fetches: jwksIdp.length, metric: jwksMetric, bound: jwksBound, maxPerRefresh, perRefreshBound, recoveries },
    introspection: { calls: introIdp, metric: introMetric, bound: introBound, distinctOpaque },
    wasmDelta, wasmStats: Object.fromEntries(wasmKeys.map((k) => [k, stats[k]])), badLines: badLines.slice(0, 20), failures, table: rows,
  };
  return { ok: failures.length === 0, markdown, json, csv: `${lines.join('\n')}\n` };
}
