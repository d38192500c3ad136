// The operator files against a real scrape: envoy/grafana-dashboard.json, envoy/prometheus-alerts.yaml
// and the series of its promtool unit tests name only metrics that real Envoy 1.40 exports for
// fhirgate at /stats/prometheus (so a renamed metric fails here), and every dashboard query and
// alert rule evaluates without error on series shaped like that scrape, each dashboard query
// returning data (promtool test rules on a generated file).
//
// The scrape comes from a stack that provokes each metric: allowed and denied requests, a rule
// denial, a rewritten and a refused response, opaque tokens (introspection), an IdP outage (JWKS
// and introspection failures), a hanging collector with a one-record queue (failed batches,
// dropped records), and the module loaded by Envoy's remote loading (envoy_wasm_remote_load_*).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import YAML from 'yaml';
import { REPO } from './lib/envoy.mjs';
import { startCollector } from './lib/collector.mjs';
import { remoteCode, startModuleServer } from './lib/module-server.mjs';
import { baseConfig, bearer, eventually, introspectionConfig, startStack } from './lib/stack.mjs';

const DASHBOARD = path.join(REPO, 'envoy', 'grafana-dashboard.json');
const ALERTS = path.join(REPO, 'envoy', 'prometheus-alerts.yaml');
const ALERT_TESTS = path.join(REPO, 'envoy', 'prometheus-alerts.test.yaml');

/** Dashboard queries with Grafana's variables replaced by what "All" selects. */
function dashboardQueries() {
  const dash = JSON.parse(fs.readFileSync(DASHBOARD, 'utf8'));
  const out = [];
  const visit = (panels) => {
    for (const p of panels ?? []) {
      for (const t of p.targets ?? []) out.push({ panel: p.title, expr: t.expr.replaceAll('$job', '.*').replaceAll('$instance', '.*') });
      visit(p.panels);
    }
  };
  visit(dash.panels);
  for (const v of dash.templating.list) {
    if (v.type === 'query') out.push({ panel: `variable ${v.name}`, expr: /label_values\((.+), \w+\)$/.exec(v.definition)[1].replaceAll('$job', '.*') });
  }
  return out;
}

function alertRules() {
  return YAML.parse(fs.readFileSync(ALERTS, 'utf8')).groups.flatMap((g) => g.rules);
}

/**
 * The metrics a PromQL expression reads: `{ names, regexes, recorded }` — plain metric names
 * (fhirgate_* and envoy_*), `__name__=~` regexes, and recording-rule names (with a colon).
 */
export function metricRefs(expr) {
  const regexes = [...expr.matchAll(/__name__\s*=~\s*"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]);
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, '{}')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '');
  const names = [...bare.matchAll(/(?<![\w:])((?:fhirgate|envoy)_\w+)(?![\w:(])/g)].map((m) => m[1]);
  const recorded = [...bare.matchAll(/(?<![\w:])([a-zA-Z_]\w*:[\w:]+)/g)].map((m) => m[1]);
  return { names, regexes, recorded };
}

/** Parses Prometheus text: `{ series: [{ name, labels }], types: { name: type } }`. */
function parseScrape(text) {
  const series = [];
  const types = {};
  for (const line of text.split('\n')) {
    const t = /^# TYPE (\S+) (\S+)/.exec(line);
    if (t) types[t[1]] = t[2];
    const m = /^([a-zA-Z_:][\w:]*)\{(.*)\} \S+$/.exec(line);
    if (m) series.push({ name: m[1], labels: m[2] });
  }
  return { series, types };
}

function typeOf(name, types) {
  if (types[name]) return types[name];
  const base = name.replace(/_(bucket|sum|count)$/, '');
  return types[base] ?? 'untyped';
}

describe('the dashboard and the alerts read what Envoy exports', () => {
  let stack;
  let collector;
  let origin;
  let scrape;

  before(async () => {
    collector = await startCollector();
    origin = await startModuleServer();
    stack = await startStack({
      clusters: { audit: collector.port, wasm_origin: origin.port },
      editBootstrap: remoteCode(origin),
      config: (ctx) => baseConfig(ctx, {
        provider: {
          jwks: { remote: { cluster: 'idp', authority: `127.0.0.1:${ctx.idp.port}`, path: '/jwks', refresh: '1s', timeout: '500ms' } },
          introspection: introspectionConfig(ctx.idp, { timeout: '500ms' }),
        },
        rules: [{ name: 'no-carol', match: "fhir.resourceType == 'Patient'", expression: "fhir.id != 'pat-carol'", message: 'not Carol' }],
        audit: {
          collector: {
            cluster: 'audit', authority: `127.0.0.1:${collector.port}`, path: '/ingest',
            batchSize: 1, flushInterval: '100ms', timeout: '300ms', maxInFlight: 1, maxQueue: 1,
          },
        },
      }),
    });
    const { envoy, idp } = stack;
    const jwt = await idp.token({ scope: 'system/*.rs' });
    const alice = await idp.token({ scope: 'patient/*.rs', patient: 'pat-alice' });
    const patientsOnly = await idp.token({ scope: 'system/Patient.rs' });
    const opaque = await idp.token({ scope: 'system/*.rs', format: 'opaque' });
    const opaqueLater = await idp.token({ scope: 'system/*.rs', format: 'opaque' });
    const expect = async (p, status, headers) => {
      const res = await envoy.request(p, { headers });
      assert.equal(res.status, status, `${p}: ${res.text.slice(0, 200)}`);
    };
    await expect('/fhir/Patient/pat-alice', 200, bearer(jwt));
    await expect('/fhir/Patient/pat-alice', 200, bearer(jwt));
    await expect('/fhir/Patient/pat-alice', 401, {});
    await expect('/fhir/Patient/pat-carol', 403, bearer(jwt));
    await expect('/fhir/Observation/obs-alice-hr', 403, bearer(patientsOnly));
    await expect('/fhir/Observation?patient=Patient/pat-alice', 200, bearer(alice)); // the PSY entry is withheld
    await expect('/fhir/Observation/obs-alice-psy', 403, bearer(alice));
    await expect('/fhir/Patient/pat-alice', 200, bearer(opaque));
    // A collector that hangs: batches time out, and the one-record queue overflows.
    collector.mode = 'hang';
    for (let i = 0; i < 8; i += 1) await expect('/fhir/Patient/pat-alice', 200, bearer(jwt));
    // The IdP goes away: JWKS refreshes fail, an uncached opaque token gets 503.
    await idp.stop();
    await new Promise((r) => setTimeout(r, 2500));
    await expect('/fhir/Patient/pat-alice', 503, bearer(opaqueLater));
    await idp.start();
    collector.mode = 'ok';
    const needed = ['fhirgate_audit_records_dropped_total', 'fhirgate_audit_records_failed_total', 'fhirgate_jwks_fetch_failures_total',
      'fhirgate_introspection_failures_total', 'fhirgate_introspection_ms_bucket'];
    scrape = await eventually(async () => {
      const text = await envoy.prometheus();
      return needed.every((n) => new RegExp(`^${n}\\{`, 'm').test(text)) ? text : null;
    }, { timeoutMs: 20_000, intervalMs: 500 }) ?? await envoy.prometheus();
  });

  after(async () => {
    await stack?.stop();
    await collector?.stop();
    await origin?.stop();
  });

  test('every metric the dashboard, the alerts and their unit tests name is in the scrape', () => {
    const { series } = parseScrape(scrape);
    const have = new Set(series.map((s) => s.name));
    const recordedHere = new Set(alertRules().filter((r) => r.record).map((r) => r.record));
    const missing = [];
    const sources = [
      ...dashboardQueries().map((q) => [`dashboard "${q.panel}"`, q.expr]),
      ...alertRules().map((r) => [`rule ${r.alert ?? r.record}`, r.expr]),
      ...YAML.parse(fs.readFileSync(ALERT_TESTS, 'utf8')).tests.flatMap((t) => t.input_series.map((s) => [`unit test "${t.name}"`, s.series])),
    ];
    let checked = 0;
    for (const [where, expr] of sources) {
      const refs = metricRefs(expr);
      for (const n of refs.names) {
        checked += 1;
        if (!have.has(n)) missing.push(`${where}: ${n}`);
      }
      for (const re of refs.regexes) {
        checked += 1;
        const r = new RegExp(`^(?:${re})$`);
        if (![...have].some((n) => r.test(n))) missing.push(`${where}: nothing matches __name__=~"${re}"`);
      }
      for (const rec of refs.recorded) {
        if (!recordedHere.has(rec)) missing.push(`${where}: ${rec} is recorded by no rule in prometheus-alerts.yaml`);
      }
    }
    assert.ok(checked > 40, `only ${checked} metric references found`);
    assert.deepEqual(missing, [], `not in a real /stats/prometheus scrape:\n${missing.join('\n')}`);
  });

  test('the reference extraction sees names, regexes and recorded series, not labels', () => {
    const refs = metricRefs('sum by (envoy_response_code_class) (rate(envoy_http_downstream_rq_xx{envoy_http_conn_manager_prefix!="admin"}[5m])) / fhirgate:decisions:rate5m + sum(rate(label_replace({__name__=~"fhirgate_decisions_deny_.+"}, "reason", "$1", "__name__", "fhirgate_x_(.+)")[5m:1m]))');
    assert.deepEqual(refs.names, ['envoy_http_downstream_rq_xx']);
    assert.deepEqual(refs.regexes, ['fhirgate_decisions_deny_.+']);
    assert.deepEqual(refs.recorded, ['fhirgate:decisions:rate5m']);
  });

  test('every dashboard query returns data and every rule evaluates, on series shaped like the scrape', () => {
    const { series, types } = parseScrape(scrape);
    const queries = dashboardQueries();
    const wanted = (name) => queries.concat(alertRules().map((r) => ({ expr: r.expr }))).some(({ expr }) => {
      const refs = metricRefs(expr);
      return refs.names.includes(name) || refs.regexes.some((re) => new RegExp(`^(?:${re})$`).test(name));
    });
    const input = series.filter((s) => wanted(s.name)).map((s) => ({
      series: `${s.name}{${[s.labels, 'job="fhir"', 'instance="envoy:15090"'].filter((l) => l !== '').join(',')}}`,
      values: ['counter', 'histogram'].includes(typeOf(s.name, types)) ? '0+1x30' : '1x30',
    }));
    assert.ok(input.length > 20, `${input.length} series`);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhirgate-promtool-'));
    try {
      fs.copyFileSync(ALERTS, path.join(dir, 'alerts.yaml'));
      fs.writeFileSync(path.join(dir, 'dashboard.test.yaml'), YAML.stringify({
        rule_files: ['alerts.yaml'],
        evaluation_interval: '1m',
        tests: [{
          interval: '1m',
          input_series: input,
          promql_expr_test: queries.map((q) => ({
            expr: `clamp_max(count(${q.expr}), 1)`,
            eval_time: '20m',
            exp_samples: [{ labels: '{}', value: 1 }],
          })),
        }],
      }));
      const res = spawnSync('promtool', ['test', 'rules', 'dashboard.test.yaml'], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
      assert.equal(res.error, undefined, 'promtool is missing: run make tools-prom');
      const out = `${res.stdout}${res.stderr}`;
      assert.equal(res.status, 0, `promtool on the dashboard queries and the rules:\n${out.slice(0, 4000)}`);
      assert.doesNotMatch(out, /err:/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the dashboard is a Grafana dashboard on a Prometheus data source', () => {
    const dash = JSON.parse(fs.readFileSync(DASHBOARD, 'utf8'));
    assert.equal(dash.uid, 'fhirgate');
    assert.ok(dash.schemaVersion >= 36);
    const panels = dash.panels.filter((p) => p.type !== 'row');
    assert.ok(panels.length >= 12);
    for (const p of panels) {
      assert.equal(p.datasource.uid, '${datasource}', p.title);
      assert.ok(p.targets.length > 0 && p.description, p.title);
    }
    assert.equal(new Set(dash.panels.map((p) => p.id)).size, dash.panels.length, 'panel ids are unique');
  });
});
