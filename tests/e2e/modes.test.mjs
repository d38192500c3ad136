// The two Envoy modes (README "Envoy modes"; issue "Runs as shipped in Istio and in plain Envoy"):
// the built filter in real Envoy, with and without `allow_on_headers_stop_iteration`, real IdP
// tokens, the real FHIR router upstream, which records every request as its headers arrive (so
// a request cut off after its headers is seen too).
import assert from 'node:assert/strict';
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { baseConfig, bearer, eventually, startStack } from './lib/stack.mjs';

/** One request that reports a cut-off response instead of rejecting: `{ status, text, complete }`. */
function fetchRaw(port, path, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, headers, agent: false, timeout: 15_000 }, (res) => {
      const chunks = [];
      let done = false;
      const finish = (complete) => {
        if (done) return;
        done = true;
        resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString('utf8'), complete });
      };
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => finish(res.complete));
      res.on('aborted', () => finish(false));
      res.on('error', () => finish(false));
      res.on('close', () => finish(res.complete));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} hung`)));
    req.on('error', reject);
    if (body !== undefined) req.write(typeof body === 'string' ? body : JSON.stringify(body));
    req.end();
  });
}

const observation = (patient) => ({
  resourceType: 'Observation', status: 'final', code: { text: 'heart rate' },
  subject: { reference: `Patient/${patient}` },
});

const fhirJson = { 'content-type': 'application/fhir+json' };

/** The upstream's record of the request with this `x-request-id` (undefined: never seen). */
const seenUpstream = (stack, id) => stack.fhir.requests.find((r) => r.headers['x-request-id'] === id);

async function settle(stack, id) {
  // The upstream learns of a reset asynchronously: give its socket a moment.
  for (let i = 0; i < 20 && seenUpstream(stack, id) && !seenUpstream(stack, id).complete && !seenUpstream(stack, id).aborted; i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  return seenUpstream(stack, id);
}

function criticalModeLines(envoy) {
  return envoy.log().split('\n').filter((l) => l.includes('allow_on_headers_stop_iteration') && l.includes('[critical]'));
}

for (const stopIteration of [true, false]) {
  const mode = stopIteration ? 'full mode (allow_on_headers_stop_iteration: true)' : 'safe mode (Envoy default)';
  describe(mode, () => {
    let stack;
    let envoy;
    let writer;
    let reader;
    before(async () => {
      stack = await startStack({ stopIteration, config: (ctx) => baseConfig(ctx) });
      ({ envoy } = stack);
      writer = await stack.idp.token({ scope: 'patient/Observation.cruds', patient: 'pat-alice' });
      reader = await stack.idp.token({ scope: 'patient/Observation.rs', patient: 'pat-alice' });
    });
    after(async () => {
      await stack?.stop();
    });

    const post = (tok, body, id) => fetchRaw(envoy.listenPort, '/fhir/Observation', {
      method: 'POST', headers: bearer(tok, { ...fhirJson, 'x-request-id': id }), body,
    });

    test('an allowed create reaches the FHIR server whole (the first one teaches the filter the mode)', async () => {
      const id = randomUUID();
      const res = await post(writer, observation('pat-alice'), id);
      assert.equal(res.status, 201, res.text.slice(0, 300));
      const saw = await settle(stack, id);
      assert.ok(saw?.complete, 'the request completed upstream');
      if (stopIteration) {
        assert.deepEqual(criticalModeLines(envoy), [], 'no complaint in full mode');
      } else {
        const lines = await eventually(() => {
          const l = criticalModeLines(envoy);
          return l.length > 0 ? l : undefined;
        }, { timeoutMs: 5000, intervalMs: 100 });
        assert.equal(lines.length, 1, 'said once, naming the missing setting');
      }
    });

    test('a create for another patient is denied; the FHIR server never gets it whole', async () => {
      const id = randomUUID();
      const res = await post(writer, observation('pat-bob'), id);
      assert.equal(res.status, 403, res.text.slice(0, 300));
      assert.equal(JSON.parse(res.text).issue[0].details.text, 'smart.write_outside_compartment');
      const saw = await settle(stack, id);
      if (stopIteration) {
        assert.equal(saw, undefined, 'full mode: not even the headers');
      } else if (saw) {
        // Safe mode: the headers went before the body decided (unless the reset came before
        // Envoy had an upstream connection); the request never completes there.
        assert.equal(saw.complete, false, 'never completed upstream');
        assert.equal(saw.aborted, true, 'the upstream request was reset');
      }
      const search = await fetchRaw(envoy.listenPort, '/fhir/Observation?patient=Patient/pat-bob', { headers: bearer(await stack.idp.token({ scope: 'system/*.rs' })) });
      assert.ok(!search.text.includes(`"x-request-id":"${id}"`));
    });

    test('a create with a read-only scope is denied on its headers: nothing upstream in either mode', async () => {
      const id = randomUUID();
      const res = await post(reader, observation('pat-alice'), id);
      assert.equal(res.status, 403);
      assert.equal(await settle(stack, id), undefined);
    });

    test('a batch with a foreign entry is denied; never completed upstream', async () => {
      const id = randomUUID();
      const bundle = {
        resourceType: 'Bundle', type: 'batch',
        entry: [
          { request: { method: 'POST', url: 'Observation' }, resource: observation('pat-alice') },
          { request: { method: 'POST', url: 'Observation' }, resource: observation('pat-bob') },
        ],
      };
      const res = await fetchRaw(envoy.listenPort, '/fhir', {
        method: 'POST', headers: bearer(writer, { ...fhirJson, 'x-request-id': id }), body: bundle,
      });
      assert.equal(res.status, 403);
      const saw = await settle(stack, id);
      assert.ok(stopIteration ? saw === undefined : !saw || (!saw.complete && saw.aborted), JSON.stringify(saw));
    });

    test("another patient's resource is never delivered: 403 in full mode, cut off in safe mode", async () => {
      const id = randomUUID();
      const res = await fetchRaw(envoy.listenPort, '/fhir/Observation/obs-bob-bp', { headers: bearer(reader, { 'x-request-id': id }) });
      assert.ok(!res.text.includes('pat-bob'), 'the foreign resource reached the client');
      if (stopIteration) {
        assert.equal(res.status, 403);
        assert.equal(JSON.parse(res.text).issue[0].details.text, 'response.outside_scope');
      } else {
        assert.equal(res.complete, false, 'the response was cut off');
      }
      const own = await fetchRaw(envoy.listenPort, '/fhir/Observation?patient=Patient/pat-alice', { headers: bearer(reader) });
      assert.equal(own.status, 200);
      assert.ok(own.complete && own.text.includes('pat-alice'), 'own data still flows');
      const record = await eventually(() => envoy.auditRecords().find((r) => r.requestId === id), { timeoutMs: 5000, intervalMs: 100 });
      assert.equal(record?.reason, 'response.outside_scope');
    });

    test('no token: 401 and nothing upstream in either mode', async () => {
      const id = randomUUID();
      const res = await fetchRaw(envoy.listenPort, '/fhir/Observation?patient=pat-alice', { headers: { 'x-request-id': id } });
      assert.equal(res.status, 401);
      assert.equal(await settle(stack, id), undefined);
    });
  });
}
