// Added latency of filtering a 100-entry search Bundle, end to end through Envoy + fhirgate
// (`make bench-bundle`; needs `make wasm` and the e2e tools).
//
// Seeds one patient with 100 Observations (every 10th labelled PSY) into the real FHIR router,
// then measures, interleaved, the same search `Observation?patient=…&_count=100`:
//   - filtered: a patient-context token without consent: the response is buffered, every entry
//     checked against the compartment and the consent labels, the labelled ones withheld and the
//     Bundle rewritten;
//   - unfiltered: a system/ token whose consent claim grants every configured label: no response
//     check applies, the response streams through.
// The router's in-memory search takes long and varies (≈180 ms here), which would drown the
// filter's cost: its answer to the measured search is taken once, directly from the router, and
// replayed byte for byte by the upstream for that path (everything else still goes to the router).
// Prints p50/p99 of both and the added latency in µs. BENCH_BUNDLE_N (default 400) requests each.
import { performance } from 'node:perf_hooks';
import { bearer, startStack } from '../tests/e2e/lib/stack.mjs';

const N = Number(process.env.BENCH_BUNDLE_N ?? 400);
const WARMUP = 50;
const PATIENT = 'pat-bench';
const ALL_LABELS = 'BH ETH GDIS HIV MST PSY SCA SDV SEX STD SUD TBOO R V';

function seed() {
  const out = [{ resourceType: 'Patient', id: PATIENT, name: [{ family: 'Bench' }] }];
  for (let i = 0; i < 100; i += 1) {
    const obs = {
      resourceType: 'Observation', id: `obs-bench-${i}`, status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }] },
      subject: { reference: `Patient/${PATIENT}` }, effectiveDateTime: '2024-03-01T10:00:00Z',
      valueQuantity: { value: 60 + (i % 40), unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
    };
    if (i % 10 === 0) obs.meta = { security: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'PSY' }] };
    out.push(obs);
  }
  return out;
}

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

const path = `/fhir/Observation?patient=Patient/${PATIENT}&_count=100`;

/** Seeds the router, takes its answer to `path` once, and replays it for that path. */
async function memoize(fhir) {
  await fhir.seed(seed());
  const res = await fetch(`${fhir.url}${path}`);
  const body = Buffer.from(await res.arrayBuffer());
  const handle = fhir.handle.bind(fhir);
  fhir.handle = async (req, res2) => {
    if (req.url !== path) return handle(req, res2);
    res2.writeHead(200, { 'content-type': 'application/fhir+json', 'content-length': body.length });
    res2.end(body);
    return undefined;
  };
}

const stack = await startStack({ beforeEnvoy: async ({ fhir }) => memoize(fhir) });
try {
  const { envoy, idp } = stack;
  const filtered = await idp.token({ scope: 'launch/patient patient/*.rs', patient: PATIENT });
  const plain = await idp.token({ scope: 'system/*.rs', claims: { consent: ALL_LABELS } });
  const once = async (tok) => {
    const t0 = performance.now();
    const res = await envoy.request(path, { headers: bearer(tok) });
    const us = (performance.now() - t0) * 1000;
    if (res.status !== 200) throw new Error(`status ${res.status}: ${res.text.slice(0, 200)}`);
    return { us, entries: res.json.entry.length };
  };
  const a = await once(filtered);
  const b = await once(plain);
  if (b.entries !== 100 || a.entries !== 91) {
    throw new Error(`unexpected entry counts: filtered ${a.entries} (want 90 + 1 outcome), unfiltered ${b.entries}`);
  }
  for (let i = 0; i < WARMUP; i += 1) {
    await once(filtered);
    await once(plain);
  }
  const with_ = [];
  const without = [];
  for (let i = 0; i < N; i += 1) {
    with_.push((await once(filtered)).us);
    without.push((await once(plain)).us);
  }
  with_.sort((x, y) => x - y);
  without.sort((x, y) => x - y);
  const row = (name, xs) => `${name.padEnd(34)} p50 ${pct(xs, 50).toFixed(0).padStart(6)} µs   p99 ${pct(xs, 99).toFixed(0).padStart(6)} µs`;
  console.log(`100-entry search Bundle through Envoy + fhirgate, ${N} requests each (interleaved, sequential)`);
  console.log(row('filtered (patient token, labels)', with_));
  console.log(row('unfiltered (no response check)', without));
  console.log(`added latency: p50 ${(pct(with_, 50) - pct(without, 50)).toFixed(0)} µs, p99 ${(pct(with_, 99) - pct(without, 99)).toFixed(0)} µs`);
} finally {
  await stack.stop();
}
