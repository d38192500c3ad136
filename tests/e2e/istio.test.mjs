// The Istio manifests `fhirgate render` writes (WasmPlugin: safe mode; EnvoyFilter: full mode):
// valid against Istio's published CRD schemas (npm @kubernetes-models/istio) with no field those
// schemas do not declare (Kubernetes would prune it silently), the checked-in examples in envoy/
// current, and the Wasm filter each one gives Envoy running in real Envoy 1.40 in the mode it
// promises. `FHIRGATE_UPDATE_EXAMPLES=1` (make istio-examples) rewrites the examples instead.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import YAML from 'yaml';
import { WasmPlugin } from '@kubernetes-models/istio/extensions.istio.io/v1alpha1/WasmPlugin';
import { EnvoyFilter } from '@kubernetes-models/istio/networking.istio.io/v1alpha3/EnvoyFilter';
import { DestinationRule } from '@kubernetes-models/istio/networking.istio.io/v1/DestinationRule';
import { ServiceEntry } from '@kubernetes-models/istio/networking.istio.io/v1/ServiceEntry';
import { REPO, WASM } from './lib/envoy.mjs';
import { render } from './lib/render.mjs';
import { baseConfig, bearer, eventually, startStack } from './lib/stack.mjs';

/** The arguments the checked-in examples are rendered with (the digest is a placeholder). */
export const EXAMPLE_ARGS = [
  '--policy', 'policies/smart-default.json', '--base', 'envoy/istio-config.json',
  '--name', 'fhirgate', '--namespace', 'fhir', '--selector', 'app=fhir-server', '--port', '8080',
  '--image', 'oci://registry.example.org/fhirgate:0.1.0', '--sha256', '0'.repeat(64),
];
const EXAMPLES = { wasmplugin: 'envoy/istio-wasmplugin.yaml', envoyfilter: 'envoy/istio-envoyfilter.yaml' };
const MODELS = { WasmPlugin, EnvoyFilter, ServiceEntry, DestinationRule };
/** Objects the CRDs leave free-form (x-kubernetes-preserve-unknown-fields): checked elsewhere. */
const FREE_FORM = [/^spec\.pluginConfig$/, /^spec\.configPatches\.\d+\.patch\.value$/];

/**
 * Validates `doc` with its kind's model from @kubernetes-models/istio and returns the paths of
 * fields the schema does not declare. The generated validators read every declared property and
 * enumerate map-typed objects, so a field they never touched is unknown to the schema.
 */
export function validateStrict(doc) {
  const Model = MODELS[doc.kind];
  assert.ok(Model, `no schema for kind ${doc.kind}`);
  const model = new Model(doc);
  const seen = new Set();
  const track = (v, at) => (v === null || typeof v !== 'object' ? v : new Proxy(v, {
    get(t, k, r) {
      if (typeof k === 'string') seen.add(`${at}.${k}`);
      return track(Reflect.get(t, k, r), `${at}.${String(k)}`);
    },
    ownKeys(t) {
      seen.add(`${at}.*`);
      return Reflect.ownKeys(t);
    },
  }));
  model.spec = track(model.spec, 'spec');
  model.validate(); // throws on a schema violation
  const unknown = [];
  const walk = (v, at) => {
    if (v === null || typeof v !== 'object' || FREE_FORM.some((re) => re.test(at))) return;
    for (const [k, child] of Object.entries(v)) {
      const here = `${at}.${k}`;
      if (!Array.isArray(v) && !seen.has(here) && !seen.has(`${at}.*`)) unknown.push(here);
      walk(child, here);
    }
  };
  walk(doc.spec, 'spec');
  return unknown;
}

function parseAll(text) {
  return YAML.parseAllDocuments(text).map((d) => {
    assert.deepEqual(d.errors, [], 'valid YAML');
    return d.toJS();
  });
}

/** What istio-agent hands Envoy for an EnvoyFilter's EXTENSION_CONFIG: remote code → local file. */
function agentRewrite(typedConfig, wasmPath) {
  const tc = structuredClone(typedConfig);
  assert.ok(tc.config.vm_config.code.remote.http_uri.uri.startsWith('oci://'));
  tc.config.vm_config.code = { local: { filename: wasmPath } };
  return tc;
}

/**
 * What istiod + istio-agent hand Envoy for a WasmPlugin (istio pilot/pkg/model/extensions.go):
 * plugin name `<namespace>.<name>`, the pluginConfig as a JSON StringValue, V8, the failure policy
 * from failStrategy, no allow_on_headers_stop_iteration (the API has no such field).
 */
function wasmPluginFilter(plugin, wasmPath) {
  const policy = { FAIL_CLOSE: 'FAIL_CLOSED', FAIL_OPEN: 'FAIL_OPEN', FAIL_RELOAD: 'FAIL_RELOAD' }[plugin.spec.failStrategy];
  return {
    '@type': 'type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm',
    config: {
      name: `${plugin.metadata.namespace}.${plugin.metadata.name}`,
      root_id: plugin.spec.pluginName ?? '',
      configuration: { '@type': 'type.googleapis.com/google.protobuf.StringValue', value: JSON.stringify(plugin.spec.pluginConfig) },
      vm_config: { runtime: 'envoy.wasm.runtime.v8', code: { local: { filename: wasmPath } } },
      failure_policy: policy,
    },
  };
}

/** A bootstrap editor that replaces fhirgate's filter entry with `typedConfig`. */
function withFilter(name, typedConfig) {
  return (bootstrap) => {
    const hcm = bootstrap.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
    const i = hcm.http_filters.findIndex((f) => f.name === 'envoy.filters.http.wasm');
    assert.ok(i >= 0);
    hcm.http_filters[i] = { name, typed_config: typedConfig };
  };
}

describe('Istio manifests', () => {
  test('both render valid against Istio\'s schemas, with no field the schemas do not declare', () => {
    for (const args of [EXAMPLE_ARGS, ['--policy', 'policies/sensitive-consent.json', '--selector', 'app=x', '--sha256', 'a'.repeat(64)]]) {
      for (const format of ['wasmplugin', 'envoyfilter']) {
        const docs = parseAll(render([...args, '--format', format]));
        assert.equal(docs.length, 1);
        assert.deepEqual(validateStrict(docs[0]), [], `${format}: fields Kubernetes would prune`);
      }
    }
  });

  test('the strict check refuses what Istio would refuse or prune', () => {
    const plugin = parseAll(render([...EXAMPLE_ARGS, '--format', 'wasmplugin']))[0];
    const typo = structuredClone(plugin);
    typo.spec.failStratgy = 'FAIL_OPEN';
    assert.deepEqual(validateStrict(typo), ['spec.failStratgy']);
    const badEnum = structuredClone(plugin);
    badEnum.spec.phase = 'FIRST';
    assert.throws(() => validateStrict(badEnum), /phase must be equal to one of the allowed values/);
    const badPin = structuredClone(plugin);
    badPin.spec.sha256 = 'sha256:abc';
    assert.throws(() => validateStrict(badPin), /sha256 must match pattern/);
    const filter = parseAll(render([...EXAMPLE_ARGS, '--format', 'envoyfilter']))[0];
    filter.spec.configPatches[1].match.listener.portNumbr = 8080;
    assert.deepEqual(validateStrict(filter), ['spec.configPatches.1.match.listener.portNumbr']);
  });

  test('the checked-in examples are what fhirgate render produces', () => {
    for (const [format, file] of Object.entries(EXAMPLES)) {
      const out = render([...EXAMPLE_ARGS, '--format', format]);
      const full = path.join(REPO, file);
      if (process.env.FHIRGATE_UPDATE_EXAMPLES === '1') fs.writeFileSync(full, out);
      assert.equal(fs.readFileSync(full, 'utf8'), out, `${file} is stale: run make istio-examples`);
    }
    for (const doc of parseAll(fs.readFileSync(path.join(REPO, 'envoy/istio-idp-serviceentry.yaml'), 'utf8'))) {
      assert.deepEqual(validateStrict(doc), [], `${doc.kind}: fields Kubernetes would prune`);
    }
  });

  test('the two manifests say plainly which mode they give', () => {
    const plugin = render([...EXAMPLE_ARGS, '--format', 'wasmplugin']);
    const filter = render([...EXAMPLE_ARGS, '--format', 'envoyfilter']);
    assert.match(plugin, /^# fhirgate as an Istio WasmPlugin: SAFE MODE/);
    assert.match(filter, /^# fhirgate as an Istio EnvoyFilter: FULL MODE/);
    const f = parseAll(filter)[0];
    const [ext, insert] = f.spec.configPatches;
    assert.equal(ext.applyTo, 'EXTENSION_CONFIG');
    assert.equal(ext.patch.value.typed_config.config.allow_on_headers_stop_iteration, true);
    assert.equal(insert.patch.value.name, ext.patch.value.name, 'the filter names the extension config it adds');
    assert.equal(insert.patch.value.config_discovery.config_source.initial_fetch_timeout, '0s');
  });

  describe('in real Envoy, as Istio hands them over', () => {
    let dir;
    before(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhirgate-istio-'));
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    /** Renders `format` with the suite's configuration for `ctx` as --base. */
    function renderFor(ctx, format) {
      const base = path.join(dir, `base-${ctx.listenPort}.json`);
      fs.writeFileSync(base, JSON.stringify(baseConfig(ctx)));
      return parseAll(render(['--policy', 'policies/smart-default.json', '--base', base, '--namespace', 'fhir',
        '--image', 'oci://registry.example.org/fhirgate:0.1.0', '--sha256', '0'.repeat(64), '--format', format]))[0];
    }

    /** Runs the stack with `format`'s filter; returns the Envoy log once it matches `expected`. */
    async function run(format, build, expected) {
      let name;
      let typed;
      const stack = await startStack({
        config: (ctx) => {
          const doc = renderFor(ctx, format);
          ({ name, typed } = build(doc));
          return baseConfig(ctx); // replaced below
        },
        editBootstrap: (b) => withFilter(name, typed)(b),
      });
      try {
        const { envoy, idp } = stack;
        const denied = await envoy.request('/fhir/Patient/pat-alice');
        assert.equal(denied.status, 401, denied.text);
        assert.equal(stack.fhir.requests.length, 0, 'the denied request reached the upstream');
        const tok = await idp.token({ scope: 'system/*.rs' });
        const ok = await envoy.request('/fhir/Patient/pat-alice', { headers: bearer(tok) });
        assert.equal(ok.status, 200, ok.text.slice(0, 300));
        assert.equal(ok.json.id, 'pat-alice');
        return await eventually(() => (expected.test(envoy.log()) ? envoy.log() : false), { timeoutMs: 5000 }) || envoy.log();
      } finally {
        await stack.stop();
      }
    }

    test('the EnvoyFilter\'s filter runs in full mode', async () => {
      const log = await run('envoyfilter', (doc) => {
        const [ext, insert] = doc.spec.configPatches;
        return { name: insert.patch.value.name, typed: agentRewrite(ext.patch.value.typed_config, WASM) };
      }, /full mode/);
      assert.match(log, /full mode/);
      assert.doesNotMatch(log, /Running in safe mode/);
    });

    test('the WasmPlugin\'s filter runs in safe mode and says so', async () => {
      const log = await run('wasmplugin', (doc) => ({ name: `${doc.metadata.namespace}.${doc.metadata.name}`, typed: wasmPluginFilter(doc, WASM) }), /Running in safe mode/);
      assert.match(log, /\[critical\].*set `allow_on_headers_stop_iteration: true`/);
    });
  });
});
