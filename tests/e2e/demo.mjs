// `make demo`: a real OpenID provider, a real FHIR server and Envoy with fhirgate, and a short
// scripted scenario. Each step prints the request, the status, fhirgate's decision and its reason
// (from the OperationOutcome and WWW-Authenticate). Everything started here is stopped on exit,
// on error and on Ctrl-C.
import { spawnSync } from 'node:child_process';
import { REPO, WASM, wasmBuilt } from './lib/envoy.mjs';
import { makeDpopKey, proof } from './lib/dpop.mjs';
import { baseConfig, bearer, decodeJwt, flipSignature, startStack } from './lib/stack.mjs';

const color = process.stdout.isTTY && !process.env.NO_COLOR;
const paint = (code, s) => (color ? `\x1b[${code}m${s}\x1b[0m` : s);
const bold = (s) => paint('1', s);
const dim = (s) => paint('2', s);
const green = (s) => paint('32', s);
const red = (s) => paint('31', s);

let stack;
let stopping = false;

async function shutdown(code) {
  if (stopping) return;
  stopping = true;
  try {
    await stack?.stop();
  } finally {
    process.exit(code);
  }
}
process.on('SIGINT', () => shutdown(130));
process.on('SIGTERM', () => shutdown(143));

function reasonOf(res) {
  const issue = res.json?.issue?.[0];
  const parts = [];
  if (issue) {
    const reason = issue.details?.text ? ` [${issue.details.text}]` : '';
    parts.push(`${issue.code}${reason}: ${issue.diagnostics ?? ''}`.trim());
  }
  const challenge = res.headers['www-authenticate'];
  if (challenge) parts.push(`WWW-Authenticate: ${challenge}`);
  if (res.headers['retry-after']) parts.push(`Retry-After: ${res.headers['retry-after']}`);
  return parts.join('\n      ');
}

function summary(res) {
  const body = res.json;
  if (!body) return '';
  if (body.resourceType === 'Bundle') {
    const ids = (body.entry ?? []).map((e) => (e.resource.id
      ? `${e.resource.resourceType}/${e.resource.id}`
      : `${e.resource.resourceType} "${e.resource.issue?.[0]?.diagnostics ?? ''}"`));
    return `Bundle with ${ids.length} entr${ids.length === 1 ? 'y' : 'ies'}${ids.length ? `: ${ids.join(', ')}` : ''}`;
  }
  return `${body.resourceType}/${body.id ?? ''}`;
}

let step = 0;
async function show(title, who, method, path, token, { body, headers = {} } = {}) {
  step += 1;
  console.log(`\n${bold(`${step}. ${title}`)}`);
  console.log(`   ${dim('as')} ${who}`);
  console.log(`   → ${method} ${path}`);
  const h = { ...headers, ...(token ? bearer(token) : {}) };
  if (body) h['content-type'] = 'application/fhir+json';
  let res;
  try {
    res = await stack.envoy.request(path, { method, headers: h, body, timeoutMs: 5000 });
  } catch (err) {
    console.log(`   ← ${red(`no answer: ${err.message}`)}`);
    return null;
  }
  const fromUpstream = res.headers['x-upstream-saw-fhirgate'] !== undefined;
  if (res.status < 400 && fromUpstream) {
    console.log(`   ← ${green(`${res.status} allowed`)}  ${summary(res)}`);
  } else if (fromUpstream) {
    console.log(`   ← ${res.status} allowed by fhirgate, answered by the FHIR server  ${summary(res)}`);
  } else {
    console.log(`   ← ${red(`${res.status} denied by fhirgate`)}`);
    console.log(`      ${reasonOf(res)}`);
  }
  return res;
}

async function main() {
  if (!wasmBuilt()) {
    console.log('building fhirgate.wasm (make wasm)');
    const r = spawnSync('make', ['-C', REPO, 'wasm'], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error('make wasm failed');
  }
  console.log(bold('fhirgate demo'));
  console.log(`filter: ${WASM}`);
  stack = await startStack({ config: (ctx) => baseConfig(ctx, { smart: { enforce: true } }) });
  const { idp, fhir, envoy } = stack;
  console.log(`IdP (oidc-provider)       ${idp.issuer}   keys ${idp.kids().join(', ')}`);
  console.log(`FHIR server (medplum)     ${fhir.url}/fhir   patients pat-alice, pat-bob, pat-carol`);
  console.log(`Envoy + fhirgate          ${envoy.url}/fhir   (log ${envoy.logFile})`);

  const alice = await idp.token({ scope: 'launch/patient patient/*.rs', patient: 'pat-alice', alg: 'ES256' });
  const aliceConsent = await idp.token({
    scope: 'launch/patient patient/*.rs', patient: 'pat-alice', claims: { consent: ['PSY'] },
  });
  const labsOnly = await idp.token({ scope: 'patient/Observation.rs', patient: 'pat-alice' });
  const backend = await idp.token({ scope: 'system/*.rs' });
  const shortLived = await idp.token({ scope: 'patient/*.rs', patient: 'pat-alice', ttl: 1 });
  const aliceApp = "Alice's patient app (patient/*.rs, patient=pat-alice, ES256)";

  await show("Alice's app reads her own record", aliceApp, 'GET', '/fhir/Patient/pat-alice', alice);
  await show('... and searches her lab results', aliceApp, 'GET', '/fhir/Observation?patient=Patient/pat-alice&category=laboratory', alice);
  await show('... and her counselling note, labelled PSY (her token carries no consent for it)', aliceApp,
    'GET', '/fhir/Observation/obs-alice-psy', alice);
  await show('... and all her observations: the labelled one is withheld from the Bundle', aliceApp,
    'GET', '/fhir/Observation?patient=Patient/pat-alice', alice);
  await show('The same app once Alice consented to PSY (consent claim in the token)', "Alice's app (consent: PSY)",
    'GET', '/fhir/Observation/obs-alice-psy', aliceConsent);
  await show("... then tries Bob's record (another patient)", aliceApp, 'GET', '/fhir/Patient/pat-bob', alice);
  await show("... and a search across every patient's observations", aliceApp, 'GET', '/fhir/Observation?category=laboratory', alice);
  await show('... and a write with a read-only scope', aliceApp, 'POST', '/fhir/Observation', alice, {
    body: { resourceType: 'Observation', status: 'final', code: { text: 'steps' }, subject: { reference: 'Patient/pat-alice' } },
  });
  await show('An app granted only Observation reads asks for Conditions', 'app (patient/Observation.rs, patient=pat-alice)',
    'GET', '/fhir/Condition?patient=pat-alice', labsOnly);
  await show('No token at all', 'anonymous', 'GET', '/fhir/Patient/pat-alice', null);
  const exp = decodeJwt(shortLived.access_token).payload.exp;
  const wait = (exp + 2) * 1000 - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  await show('An expired token', 'app with a 1 s token', 'GET', '/fhir/Patient/pat-alice', shortLived);
  await show('A forged token (one signature byte changed)', 'attacker', 'GET', '/fhir/Patient/pat-alice',
    flipSignature(alice.access_token));
  await show('A backend service reads any patient', 'backend service (system/*.rs)', 'GET', '/fhir/Patient/pat-bob', backend);

  // Sender-constrained tokens (DPoP): the IdP binds the pump's token to the pump's key.
  const pumpKey = makeDpopKey();
  const pump = await idp.token({ scope: 'patient/*.rs', patient: 'pat-alice', dpop: pumpKey });
  const read = '/fhir/Patient/pat-alice';
  const pumpProof = proof(pumpKey, { htm: 'GET', htu: `${envoy.url}${read}`, accessToken: pump.access_token });
  const dpop = (p) => ({ authorization: `DPoP ${pump.access_token}`, dpop: p });
  const pumpApp = `Alice's insulin pump (DPoP-bound token, cnf.jkt ${decodeJwt(pump.access_token).payload.cnf.jkt.slice(0, 8)}…)`;
  await show('The pump reads its patient with a DPoP proof signed by its key', pumpApp, 'GET', read, null,
    { headers: dpop(pumpProof) });
  await show('The same token, stolen from a log, used as a bearer token', 'attacker', 'GET', read, pump);
  const thiefKey = makeDpopKey();
  await show('... with a proof signed by the attacker\'s own key', 'attacker', 'GET', read, null,
    { headers: dpop(proof(thiefKey, { htm: 'GET', htu: `${envoy.url}${read}`, accessToken: pump.access_token })) });
  await show('... with the pump\'s captured proof, replayed', 'attacker', 'GET', read, null, { headers: dpop(pumpProof) });
  console.log('\nNo response above repeats a token. Audit lines are in the Envoy log:', envoy.logFile);
}

main().then(
  () => shutdown(0),
  (err) => {
    console.error(red(`demo failed: ${err?.message ?? err}`));
    return shutdown(1);
  },
);
