// Envoy's own remote loading: `vm_config.code.remote` with an `http_uri` to a module server on
// loopback and the module's `sha256`. With the right digest real Envoy fetches fhirgate.wasm and
// serves through it; with a wrong one Envoy 1.40 fetches, refuses the module ("Plugin fhirgate
// failed to load"), still starts the listener, and — the filter being fail-closed — answers every
// request 503 with an empty body. Nothing reaches the upstream unchecked (it records every request
// whose headers arrive).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { MODULE_SHA, remoteCode, startModuleServer } from './lib/module-server.mjs';
import { bearer, eventually, startStack } from './lib/stack.mjs';

/** A stack whose filter loads its code from the module server, pinned to `sha256`. */
function remoteStack(origin, sha256) {
  return startStack({ clusters: { wasm_origin: origin.port }, editBootstrap: remoteCode(origin, sha256) });
}

async function prometheusValue(envoy, name) {
  const text = await envoy.prometheus({ flushed: false });
  const m = new RegExp(`^${name}\\{\\} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

describe('Envoy loads fhirgate.wasm over HTTP (vm_config.code.remote)', () => {
  describe('with the module\'s sha256', () => {
    let origin;
    let stack;
    before(async () => {
      origin = await startModuleServer();
      stack = await remoteStack(origin, MODULE_SHA);
    });
    after(async () => {
      await stack?.stop();
      await origin?.stop();
    });

    test('the module came from the server, and the filter denies and allows as configured', async () => {
      assert.ok(origin.requests.includes('/fhirgate.wasm'), 'Envoy fetched the module');
      assert.equal(await prometheusValue(stack.envoy, 'envoy_wasm_remote_load_fetch_successes'), 1);
      const denied = await stack.envoy.request('/fhir/Patient/pat-alice');
      assert.equal(denied.status, 401);
      assert.equal(denied.json?.issue?.[0]?.details?.text, 'token.missing');
      assert.equal(stack.fhir.requests.length, 0, 'the denied request reached the upstream');
      const tok = await stack.idp.token({ scope: 'system/*.rs' });
      const ok = await stack.envoy.request('/fhir/Patient/pat-alice', { headers: bearer(tok) });
      assert.equal(ok.status, 200, ok.text.slice(0, 300));
      assert.equal(ok.json.id, 'pat-alice');
      assert.equal(stack.fhir.requests.length, 1);
    });
  });

  describe('with a wrong sha256', () => {
    let origin;
    let stack;
    before(async () => {
      origin = await startModuleServer();
      const wrong = `${MODULE_SHA.slice(0, -1)}${MODULE_SHA.endsWith('0') ? '1' : '0'}`;
      stack = await remoteStack(origin, wrong);
    });
    after(async () => {
      await stack?.stop();
      await origin?.stop();
    });

    test('Envoy refuses the module, and the listener answers 503 without passing anything upstream', async () => {
      assert.ok(origin.requests.includes('/fhirgate.wasm'), 'Envoy fetched the module');
      const log = await eventually(() => (/Plugin fhirgate failed to load/.test(stack.envoy.log()) ? stack.envoy.log() : false), { timeoutMs: 5000 });
      assert.ok(log, 'Envoy logs that the plugin failed to load');
      assert.match(log, /\[critical\].*Plugin configured to fail closed failed to load/);
      assert.equal(await prometheusValue(stack.envoy, 'envoy_wasm_remote_load_fetch_failures'), 1);
      const tok = await stack.idp.token({ scope: 'system/*.rs' });
      const attempts = [
        ['GET', '/fhir/Patient/pat-alice', {}],
        ['GET', '/fhir/Patient/pat-alice', bearer(tok)],
        ['POST', '/fhir/Observation', { ...bearer(tok), 'content-type': 'application/fhir+json' }],
        ['GET', '/fhir/metadata', {}],
      ];
      for (const [method, p, headers] of attempts) {
        const body = method === 'POST' ? { resourceType: 'Observation', status: 'final', code: { text: 'x' } } : undefined;
        const res = await stack.envoy.request(p, { method, headers, body });
        assert.equal(res.status, 503, `${method} ${p}`);
        assert.equal(res.text, '', 'an empty 503 from the fail-closed Wasm filter');
      }
      assert.deepEqual(stack.fhir.requests, [], 'no request reached the upstream');
      assert.equal(await prometheusValue(stack.envoy, 'fhirgate_decisions_allow_allow'), undefined, 'fhirgate never ran');
    });
  });
});
