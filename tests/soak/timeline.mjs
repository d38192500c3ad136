// The soak's fault timeline and the filter settings derived from the run's length.
//
// The run is two cycles of the same faults, so that memory can be compared between the end of
// the first cycle (warm: every cache, queue and fault path has been through its worst) and the
// second. Within a cycle of length C (fractions of C):
//
//   0.05-0.15  JWKS endpoint answers 500          0.50-0.58  audit collector down (refused)
//   0.15-0.25  JWKS endpoint hangs                0.58-0.68  audit collector hangs (queue fills)
//   0.20       key rotation while the endpoint    0.70-0.76  garbage tokens, malformed requests
//              hangs: new tokens carry a new kid  0.78-0.88  upstream 500s and truncated bodies
//              (old keys stay published); the     0.30-0.40  introspection slow (< timeout)
//              endpoint serves it from 0.25       0.40-0.50  introspection down (reset)

const WINDOWS = [
  ['jwks', 'fail', 0.05, 0.15],
  ['jwks', 'hang', 0.15, 0.25],
  ['introspection', 'slow', 0.30, 0.40],
  ['introspection', 'down', 0.40, 0.50],
  ['collector', 'down', 0.50, 0.58],
  ['collector', 'hang', 0.58, 0.68],
  ['garbage', true, 0.70, 0.76],
  ['upstream', 'faulty', 0.78, 0.88],
];
const ROTATION_AT = 0.20;
const DEFAULTS = { jwks: 'ok', introspection: 'ok', collector: 'ok', garbage: false, upstream: 'ok' };

/** The timeline of a run of `duration` seconds, with the filter settings it uses. */
export function buildTimeline(duration) {
  const cycle = duration / 2;
  const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));
  // The JWKS refresh must be shorter than a fault window, so a refresh falls inside each one.
  const refreshS = Math.round(clamp(cycle * 0.035, 1, 30));
  const config = {
    refreshS,
    jwksTimeoutS: 1,
    maxStalenessS: 600,
    minRefetchS: Math.max(refreshS, Math.round(clamp(cycle * 0.1, 1, 30))),
    cacheTtlS: Math.round(clamp(cycle * 0.1, 1, 60)),
    negativeCacheTtlS: Math.round(clamp(cycle * 0.05, 1, 10)),
    introspectionTimeoutS: 1,
    cacheMaxEntries: 2000,
    sharedSlots: 4096,
    replaySlots: 2048,
    batchSize: 100,
    maxQueue: 500,
    maxQueueBytes: 1024 * 1024,
    collectorTimeoutS: 3,
    maxInFlight: 2,
    clientTimeoutMs: 20_000,
  };
  const windows = [];
  for (let c = 0; c < 2; c += 1) {
    for (const [key, value, a, b] of WINDOWS) windows.push({ key, value, start: (c + a) * cycle, end: (c + b) * cycle, cycle: c });
  }
  const rotations = [ROTATION_AT * cycle, (1 + ROTATION_AT) * cycle];
  return { duration, cycle, config, windows, rotations };
}

/** The fault state at `t` seconds into the run. */
export function phaseAt(tl, t) {
  const state = { ...DEFAULTS, rotation: tl.rotations.filter((r) => t >= r).length };
  for (const w of tl.windows) if (t >= w.start && t < w.end) state[w.key] = w.value;
  return state;
}

/** The windows of one fault (`key`, `value`), in seconds. */
export function windowsOf(tl, key, value) {
  return tl.windows.filter((w) => w.key === key && w.value === value);
}
