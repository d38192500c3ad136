// Builds an OCI image layout (https://github.com/opencontainers/image-spec/blob/main/image-layout.md)
// holding one Wasm module, in the form Istio's image fetcher accepts without Docker: the "compat"
// variant of the Wasm image spec (solo-io/wasm spec-compat.md), i.e. an ordinary OCI image
//
//   manifest  application/vnd.oci.image.manifest.v1+json
//   config    application/vnd.oci.image.config.v1+json   {architecture wasm, os wasip1, rootfs}
//   layer     application/vnd.oci.image.layer.v1.tar+gzip  a tar with one file, `plugin.wasm`
//
// Istio (pkg/wasm/imagefetcher.go) takes the last layer of such an image, requires that media type,
// and extracts the tar entry named plugin.wasm; for an oci:// URL a WasmPlugin's `sha256` is compared
// with the digest of the image manifest (not of the module).
//
// The output is reproducible: the tar entry has mtime 0, uid/gid 0, mode 0444; gzip has no name and
// mtime 0; no timestamps in the config. Same module in, same digests out.
//
// usage: node tools/oci-layout.mjs <module.wasm> <out-dir> <tag>
// Prints the manifest digest; `<out-dir>/index.json` names the manifest under
// `org.opencontainers.image.ref.name: <tag>`.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const CONFIG = 'application/vnd.oci.image.config.v1+json';
const LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

function sha256(buf) {
  return crypto.createHash('sha256').update(buf).digest('hex');
}

/** A ustar header field: `value` as NUL-padded text of `len` bytes. */
function field(header, offset, len, value) {
  const b = Buffer.from(value, 'ascii');
  if (b.length > len) throw new Error(`tar field too long: ${value}`);
  b.copy(header, offset);
}

/** An octal number field of `len` bytes (len-1 digits and a NUL). */
function octal(header, offset, len, n) {
  field(header, offset, len, `${n.toString(8).padStart(len - 1, '0')}\0`);
}

/** A POSIX ustar archive with one regular file. */
export function tarOneFile(name, data) {
  const header = Buffer.alloc(512, 0);
  field(header, 0, 100, name);
  octal(header, 100, 8, 0o444); // mode
  octal(header, 108, 8, 0); // uid
  octal(header, 116, 8, 0); // gid
  octal(header, 124, 12, data.length); // size
  octal(header, 136, 12, 0); // mtime
  header.fill(0x20, 148, 156); // checksum field counts as spaces while summing
  field(header, 156, 1, '0'); // regular file
  field(header, 257, 6, 'ustar\0');
  field(header, 263, 2, '00');
  let sum = 0;
  for (const byte of header) sum += byte;
  field(header, 148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  const pad = Buffer.alloc((512 - (data.length % 512)) % 512, 0);
  const end = Buffer.alloc(1024, 0); // two zero blocks end the archive
  return Buffer.concat([header, data, pad, end]);
}

function writeBlob(dir, buf) {
  const hex = sha256(buf);
  const file = path.join(dir, 'blobs', 'sha256', hex);
  fs.writeFileSync(file, buf);
  return { digest: `sha256:${hex}`, size: buf.length };
}

/** Writes the layout into `out` (replaced as a whole) and returns the manifest descriptor. */
export function buildLayout(wasm, out, tag) {
  if (wasm.length < 8 || wasm.readUInt32BE(0) !== 0x0061736d) throw new Error('not a Wasm module (no \\0asm magic)');
  const tmp = `${out}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(path.join(tmp, 'blobs', 'sha256'), { recursive: true });
  const tar = tarOneFile('plugin.wasm', wasm);
  // level 9 and no header name/mtime (Node writes mtime 0): deterministic for a given zlib.
  const layerBytes = zlib.gzipSync(tar, { level: 9 });
  const layer = writeBlob(tmp, layerBytes);
  const configBytes = Buffer.from(JSON.stringify({
    architecture: 'wasm',
    os: 'wasip1',
    config: {},
    rootfs: { type: 'layers', diff_ids: [`sha256:${sha256(tar)}`] },
  }));
  const config = writeBlob(tmp, configBytes);
  const manifestBytes = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: MANIFEST,
    config: { mediaType: CONFIG, ...config },
    layers: [{ mediaType: LAYER, ...layer, annotations: { 'org.opencontainers.image.title': 'plugin.wasm' } }],
    annotations: { 'org.opencontainers.image.title': 'fhirgate', 'org.opencontainers.image.version': tag },
  }));
  const manifest = writeBlob(tmp, manifestBytes);
  fs.writeFileSync(path.join(tmp, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  fs.writeFileSync(path.join(tmp, 'index.json'), `${JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{ mediaType: MANIFEST, ...manifest, annotations: { 'org.opencontainers.image.ref.name': tag } }],
  }, null, 2)}\n`);
  fs.rmSync(out, { recursive: true, force: true });
  fs.renameSync(tmp, out);
  return { manifest, config, layer, moduleSha256: sha256(wasm), moduleSize: wasm.length };
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  const [wasmPath, out, tag] = process.argv.slice(2);
  if (!wasmPath || !out || !tag || !/^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/.test(tag)) {
    console.error('usage: node tools/oci-layout.mjs <module.wasm> <out-dir> <tag>   (tag: [A-Za-z0-9_][A-Za-z0-9._-]{0,127})');
    process.exit(2);
  }
  const r = buildLayout(fs.readFileSync(wasmPath), out, tag);
  console.log(`${out}: OCI image layout, tag ${tag}`);
  console.log(`  manifest ${r.manifest.digest} (${r.manifest.size} bytes)  <- a WasmPlugin's sha256 for oci:// (without "sha256:")`);
  console.log(`  config   ${r.config.digest} (${r.config.size} bytes)`);
  console.log(`  layer    ${r.layer.digest} (${r.layer.size} bytes, tar+gzip of plugin.wasm)`);
  console.log(`  module   sha256:${r.moduleSha256} (${r.moduleSize} bytes)  <- Envoy's vm_config.code.remote.sha256 for http(s)`);
}
