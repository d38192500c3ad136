// A Wasm image pull over the registry HTTP API the way istio-agent does it (istio/istio
// pkg/wasm/imagefetcher.go and cache.go, on go-containerregistry's remote.Get), so the tests can
// tell whether Istio would load an image and what its `sha256` is compared against:
//
// 1. GET /v2/<repo>/manifests/<tag|digest> with the Accept list of remote.Get; the manifest's
//    digest is the SHA-256 of the bytes served (checked against the digest asked for, when pulling
//    by digest). An index would be resolved to linux/amd64; schema 1 is refused.
// 2. WasmPlugin `sha256` (cache.go): when given, it must equal that manifest digest (hex), else the
//    pull fails before any layer is fetched.
// 3. The module: a Docker v2 manifest -> the last layer must be a Docker tar.gzip layer; otherwise
//    the "compat" variant (last layer application/vnd.oci.image.layer.v1.tar+gzip) and then the
//    "oci" variant (exactly two layers, one application/vnd.module.wasm.content.layer.v1+wasm).
//    Each blob is checked against its descriptor's digest and size (go-containerregistry's verify);
//    a compat layer is gunzipped and the tar entry whose base name is plugin.wasm is the module.
// 4. The module must start with the Wasm magic and version 1 (cache.go isValidWasmBinary).
import crypto from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import zlib from 'node:zlib';

export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
export const DOCKER_LAYER = 'application/vnd.docker.image.rootfs.diff.tar.gzip';
export const WASM_LAYER = 'application/vnd.module.wasm.content.layer.v1+wasm';

/** remote.Get's Accept header: schema 1 (plain, signed), image manifests, then indexes. */
export const MANIFEST_ACCEPT = [
  'application/vnd.docker.distribution.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v1+prettyjws',
  DOCKER_MANIFEST,
  OCI_MANIFEST,
  DOCKER_LIST,
  OCI_INDEX,
].join(',');

/** A pull that Istio would refuse, with the reason (`code`: manifest, checksum, format, binary). */
export class PullError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

function sha256(buf) {
  return crypto.createHash('sha256').update(buf).digest('hex');
}

function get(port, pathName, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: pathName, headers, agent: false, timeout: 15_000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${pathName} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** The entries of a tar archive as `{ name, data }` (ustar, with PAX/GNU long-name records skipped). */
export function untar(buf) {
  const out = [];
  let off = 0;
  while (off + 512 <= buf.length) {
    const h = buf.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    const str = (a, b) => h.subarray(a, b).toString('latin1').replace(/\0.*$/s, '');
    const size = parseInt(str(124, 136).trim() || '0', 8);
    const type = str(156, 157) || '0';
    const prefix = str(257, 263) === 'ustar' ? str(345, 500) : '';
    const name = prefix ? `${prefix}/${str(0, 100)}` : str(0, 100);
    const data = buf.subarray(off + 512, off + 512 + size);
    if (type === '0' || type === '') out.push({ name, data });
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

/**
 * Pulls `repo:reference` (a tag, or `sha256:<hex>`) from the registry on 127.0.0.1:`port` as
 * istio-agent would, with `expectedSha256` as a WasmPlugin's `sha256` ('' for none). Returns
 * `{ wasm, manifestDigest, manifest, manifestBytes, blobsFetched }` or throws a `PullError`.
 */
export async function istioPull(port, repo, reference, expectedSha256 = '') {
  const res = await get(port, `/v2/${repo}/manifests/${reference}`, { accept: MANIFEST_ACCEPT });
  if (res.status !== 200) throw new PullError('manifest', `could not fetch manifest: HTTP ${res.status}`);
  const manifestBytes = res.body;
  const manifestDigest = sha256(manifestBytes);
  if (reference.startsWith('sha256:') && reference !== `sha256:${manifestDigest}`) {
    throw new PullError('manifest', `manifest digest sha256:${manifestDigest} does not match requested digest ${reference}`);
  }
  const mediaType = res.headers['content-type'];
  if (mediaType === OCI_INDEX || mediaType === DOCKER_LIST) {
    throw new PullError('manifest', 'an index: Istio would resolve it to a linux/amd64 image');
  }
  if (mediaType?.startsWith('application/vnd.docker.distribution.manifest.v1')) {
    throw new PullError('manifest', 'schema 1 manifests are not supported');
  }
  // cache.go: the pin is checked against the manifest digest before the module is fetched.
  if (expectedSha256 !== '' && expectedSha256 !== manifestDigest) {
    throw new PullError('checksum', `module downloaded has checksum ${manifestDigest}, which does not match: ${expectedSha256}`);
  }
  const manifest = JSON.parse(manifestBytes.toString('utf8'));
  let blobsFetched = 0;
  const blob = async (desc) => {
    const b = await get(port, `/v2/${repo}/blobs/${desc.digest}`);
    blobsFetched += 1;
    if (b.status !== 200) throw new PullError('binary', `could not fetch layer ${desc.digest}: HTTP ${b.status}`);
    if (`sha256:${sha256(b.body)}` !== desc.digest) throw new PullError('binary', `layer ${desc.digest}: digest mismatch`);
    if (b.body.length !== desc.size) throw new PullError('binary', `layer ${desc.digest}: size ${b.body.length}, not ${desc.size}`);
    return b.body;
  };
  const pluginWasm = (tgz) => {
    let tar;
    try {
      tar = zlib.gunzipSync(tgz);
    } catch (e) {
      throw new PullError('format', `failed to parse layer as tar.gz: ${e.message}`);
    }
    const entry = untar(tar).find((e) => path.posix.basename(e.name) === 'plugin.wasm');
    if (!entry) throw new PullError('format', 'plugin.wasm not found in the archive');
    return Buffer.from(entry.data);
  };
  const layers = manifest.layers ?? [];
  let wasm;
  if (manifest.mediaType === DOCKER_MANIFEST) {
    const last = layers.at(-1);
    if (!last || last.mediaType !== DOCKER_LAYER) throw new PullError('format', `Docker image: the last layer must be ${DOCKER_LAYER}`);
    wasm = pluginWasm(await blob(last));
  } else {
    // As imagefetcher.go: the compat variant first, then the oci variant; both errors if neither.
    const compat = async () => {
      const last = layers.at(-1);
      if (!last) throw new PullError('format', 'number of layers must be greater than zero');
      if (last.mediaType !== OCI_LAYER) throw new PullError('format', `invalid media type ${last.mediaType} (expect ${OCI_LAYER})`);
      return pluginWasm(await blob(last));
    };
    const ociVariant = async () => {
      if (layers.length !== 2) throw new PullError('format', `number of layers must be 2 but got ${layers.length}`);
      const layer = layers.find((l) => l.mediaType === WASM_LAYER);
      if (!layer) throw new PullError('format', `could not find the layer of type ${WASM_LAYER}`);
      return blob(layer);
    };
    const errors = [];
    for (const attempt of [compat, ociVariant]) {
      try {
        wasm = await attempt();
        break;
      } catch (e) {
        if (e.code !== 'format') throw e;
        errors.push(e.message);
      }
    }
    if (!wasm) throw new PullError('format', `the given image is in invalid format: compat: ${errors[0]}; oci: ${errors[1]}`);
  }
  if (wasm.length < 8 || wasm.readUInt32BE(0) !== 0x0061736d || wasm.readUInt32LE(4) !== 1) {
    throw new PullError('binary', 'fetched Wasm binary is invalid');
  }
  return { wasm, manifestDigest, manifest, manifestBytes, blobsFetched };
}
