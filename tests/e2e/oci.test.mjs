// `make oci` round trip: a real registry (Debian's docker-registry, the CNCF distribution, on a free
// loopback port, storage in a temp dir), `skopeo copy` of target/oci into it, and a pull back over
// the registry API as istio-agent does (lib/oci-pull.mjs). The module that comes back must be
// target/fhirgate.wasm byte for byte, and the rendered WasmPlugin/EnvoyFilter must pin exactly the
// manifest that was pushed (Istio compares `sha256` with the manifest digest for oci://).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import YAML from 'yaml';
import { freePort, REPO, WASM, request } from './lib/envoy.mjs';
import { istioPull, OCI_LAYER, OCI_MANIFEST, PullError, WASM_LAYER } from './lib/oci-pull.mjs';
import { fhirgateRender, render } from './lib/render.mjs';

const LAYOUT = path.join(REPO, 'target', 'oci');
const REGISTRY_BIN = process.env.REGISTRY_BIN ?? 'docker-registry';

function sha256(buf) {
  return crypto.createHash('sha256').update(buf).digest('hex');
}

function sh(cmd, args) {
  const res = spawnSync(cmd, args, { encoding: 'utf8', timeout: 120_000 });
  if (res.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${res.status}\n${res.stderr}${res.error ?? ''}`);
  return res.stdout;
}

/** The layout's one manifest: `{ tag, digest (hex), bytes }`. */
function layoutManifest() {
  const index = JSON.parse(fs.readFileSync(path.join(LAYOUT, 'index.json'), 'utf8'));
  assert.equal(index.manifests.length, 1, 'target/oci holds one image');
  const m = index.manifests[0];
  const hex = m.digest.replace(/^sha256:/, '');
  return { tag: m.annotations['org.opencontainers.image.ref.name'], digest: hex, bytes: fs.readFileSync(path.join(LAYOUT, 'blobs', 'sha256', hex)) };
}

/** A registry on 127.0.0.1 with its storage in a temp dir; `stop()` ends it and removes the dir. */
async function startRegistry() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhirgate-registry-'));
  const port = await freePort();
  fs.writeFileSync(path.join(dir, 'config.yml'), [
    'version: 0.1',
    'log: {level: warn}',
    `storage: {filesystem: {rootdirectory: ${JSON.stringify(path.join(dir, 'data'))}}}`,
    `http: {addr: "127.0.0.1:${port}", secret: "${crypto.randomBytes(16).toString('hex')}"}`,
    '',
  ].join('\n'));
  const child = spawn(REGISTRY_BIN, ['serve', path.join(dir, 'config.yml')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.on('data', (d) => { log += d; });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', () => child.kill('SIGKILL'));
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break;
    try {
      if ((await request(port, '/v2/', { timeoutMs: 1000 })).status === 200) return { port, dir, stop, log: () => log };
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  await stop();
  throw new Error(`registry did not start: ${log}`);
}

/** skopeo copy of an OCI layout image into the registry, digests preserved; returns the pushed digest. */
function push(layout, tag, registry, repo, destTag = tag) {
  const policy = path.join(registry.dir, 'policy.json');
  fs.writeFileSync(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  const digestFile = path.join(registry.dir, `digest-${repo}-${destTag}`);
  sh('skopeo', ['--policy', policy, 'copy', '--quiet', '--preserve-digests', '--digestfile', digestFile,
    '--dest-tls-verify=false', `oci:${layout}:${tag}`, `docker://127.0.0.1:${registry.port}/${repo}:${destTag}`]);
  return fs.readFileSync(digestFile, 'utf8').trim();
}

describe('make oci: the image Istio pulls', () => {
  let registry;
  let layout;
  let image;

  before(async () => {
    assert.ok(fs.existsSync(path.join(LAYOUT, 'index.json')), 'target/oci is missing: run make oci');
    for (const tool of [REGISTRY_BIN, 'skopeo']) {
      assert.equal(spawnSync('sh', ['-c', `command -v ${tool}`]).status, 0, `${tool} is missing: run make tools-oci`);
    }
    layout = layoutManifest();
    registry = await startRegistry();
    image = `oci://127.0.0.1:${registry.port}/fhirgate:${layout.tag}`;
    assert.equal(push(LAYOUT, layout.tag, registry, 'fhirgate'), `sha256:${layout.digest}`, 'skopeo pushed the manifest unchanged');
  });

  after(async () => {
    await registry?.stop();
  });

  test('the layout is the compat variant: one tar+gzip layer, OCI manifest, digests that match', () => {
    const m = JSON.parse(layout.bytes);
    assert.equal(sha256(layout.bytes), layout.digest);
    assert.equal(m.mediaType, OCI_MANIFEST);
    assert.equal(m.config.mediaType, 'application/vnd.oci.image.config.v1+json');
    assert.equal(m.layers.length, 1);
    assert.equal(m.layers[0].mediaType, OCI_LAYER);
    for (const d of [m.config, m.layers[0]]) {
      const blob = fs.readFileSync(path.join(LAYOUT, 'blobs', 'sha256', d.digest.replace(/^sha256:/, '')));
      assert.equal(`sha256:${sha256(blob)}`, d.digest);
      assert.equal(blob.length, d.size);
    }
  });

  test('the registry serves the pushed manifest byte for byte, and Istio\'s pull gets target/fhirgate.wasm back', async () => {
    const got = await istioPull(registry.port, 'fhirgate', layout.tag);
    assert.ok(got.manifestBytes.equals(layout.bytes), 'the registry serves the layout\'s manifest unchanged');
    assert.equal(got.manifestDigest, layout.digest);
    assert.ok(got.wasm.equals(fs.readFileSync(WASM)), 'plugin.wasm is byte-identical to target/fhirgate.wasm');
    const byDigest = await istioPull(registry.port, 'fhirgate', `sha256:${layout.digest}`);
    assert.ok(byDigest.wasm.equals(got.wasm));
  });

  test('the rendered WasmPlugin and EnvoyFilter pin exactly what was pushed, checked as Istio checks it', async () => {
    const common = ['--policy', 'policies/smart-default.json', '--namespace', 'fhir', '--image', image, '--oci-layout', 'target/oci'];
    const plugin = YAML.parse(render([...common, '--format', 'wasmplugin']));
    assert.equal(plugin.kind, 'WasmPlugin');
    assert.equal(plugin.spec.url, image);
    assert.equal(plugin.spec.sha256, layout.digest);
    const pulled = await istioPull(registry.port, 'fhirgate', layout.tag, plugin.spec.sha256);
    assert.ok(pulled.wasm.equals(fs.readFileSync(WASM)));

    const filter = YAML.parse(render([...common, '--format', 'envoyfilter']));
    const remote = filter.spec.configPatches[0].patch.value.typed_config.config.vm_config.code.remote;
    assert.equal(remote.http_uri.uri, image);
    assert.equal(remote.sha256, layout.digest);
    await istioPull(registry.port, 'fhirgate', layout.tag, remote.sha256);

    // Pinned in the URL as well: oci://…@sha256:<digest>.
    const byDigest = `oci://127.0.0.1:${registry.port}/fhirgate@sha256:${layout.digest}`;
    const pinned = YAML.parse(render(['--policy', 'policies/smart-default.json', '--image', byDigest, '--oci-layout', 'target/oci', '--format', 'wasmplugin']));
    assert.equal(pinned.spec.sha256, layout.digest);
  });

  test('a wrong pin is detected', async () => {
    // The module's own digest is what Envoy's http remote source wants, not what Istio compares
    // for oci:// — an easy mistake that must not load.
    const moduleSha = sha256(fs.readFileSync(WASM));
    const oneOff = `${layout.digest.slice(0, -1)}${layout.digest.endsWith('0') ? '1' : '0'}`;
    for (const wrong of [moduleSha, oneOff]) {
      const plugin = YAML.parse(render(['--policy', 'policies/smart-default.json', '--image', image, '--sha256', wrong, '--format', 'wasmplugin']));
      assert.equal(plugin.spec.sha256, wrong);
      await assert.rejects(istioPull(registry.port, 'fhirgate', layout.tag, plugin.spec.sha256), (e) => {
        assert.ok(e instanceof PullError && e.code === 'checksum', e.message);
        return true;
      });
    }
    // The layout's tag and the image's tag must agree, or render refuses to guess the digest.
    const res = fhirgateRender(['--policy', 'policies/smart-default.json', '--image',
      `oci://127.0.0.1:${registry.port}/fhirgate:not-built`, '--oci-layout', 'target/oci', '--format', 'wasmplugin']);
    assert.equal(res.status, 2);
    assert.match(res.stderr, /no manifest for/);
  });

  test('the one-layer form `oras push` makes is not an image Istio accepts', async () => {
    // oras push <ref> fhirgate.wasm:application/vnd.module.wasm.content.layer.v1+wasm: an empty
    // config of an unknown type and the module as the only layer.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhirgate-oras-'));
    try {
      fs.mkdirSync(path.join(dir, 'blobs', 'sha256'), { recursive: true });
      const put = (buf) => {
        const hex = sha256(buf);
        fs.writeFileSync(path.join(dir, 'blobs', 'sha256', hex), buf);
        return { digest: `sha256:${hex}`, size: buf.length };
      };
      const wasm = fs.readFileSync(WASM);
      const manifest = Buffer.from(JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: 'application/vnd.unknown.config.v1+json', ...put(Buffer.from('{}')) },
        layers: [{ mediaType: WASM_LAYER, ...put(wasm) }],
      }));
      const m = put(manifest);
      fs.writeFileSync(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
      fs.writeFileSync(path.join(dir, 'index.json'), JSON.stringify({
        schemaVersion: 2, manifests: [{ mediaType: OCI_MANIFEST, ...m, annotations: { 'org.opencontainers.image.ref.name': 'oras' } }],
      }));
      push(dir, 'oras', registry, 'fhirgate-oras');
      await assert.rejects(istioPull(registry.port, 'fhirgate-oras', 'oras'), (e) => {
        assert.ok(e instanceof PullError && e.code === 'format', e.message);
        assert.match(e.message, /number of layers must be 2 but got 1/);
        return true;
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
