// `fhirgate render` for the tests: the policy tool's binary (`$FHIRGATE_BIN`, which `make e2e`
// builds, else `cargo run`), run in the repository root.
import { spawnSync } from 'node:child_process';
import { REPO } from './envoy.mjs';

/** Runs `fhirgate render <args>`; returns `{ status, stdout, stderr }`. */
export function fhirgateRender(args) {
  const [cmd, pre] = process.env.FHIRGATE_BIN
    ? [process.env.FHIRGATE_BIN, []]
    : ['cargo', ['run', '--quiet', '--bin', 'fhirgate', '--']];
  const res = spawnSync(cmd, [...pre, 'render', ...args], { cwd: REPO, encoding: 'utf8', timeout: 600_000 });
  return { status: res.status, stdout: res.stdout ?? '', stderr: `${res.stderr ?? ''}${res.error ? res.error.message : ''}` };
}

/** `fhirgate render <args>`, failing with its stderr when it does not exit 0. */
export function render(args) {
  const res = fhirgateRender(args);
  if (res.status !== 0) throw new Error(`fhirgate render ${args.join(' ')} exited ${res.status}: ${res.stderr}`);
  return res.stdout;
}
