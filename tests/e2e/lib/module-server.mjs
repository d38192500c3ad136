// Serves the built fhirgate.wasm over HTTP on 127.0.0.1, for Envoy's own remote loading
// (`vm_config.code.remote`), and records every request.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { WASM } from './envoy.mjs';

/** The module's bytes and their SHA-256 (hex): what `code.remote.sha256` pins. */
export const MODULE = fs.readFileSync(WASM);
export const MODULE_SHA = crypto.createHash('sha256').update(MODULE).digest('hex');

/** Serves the module at /fhirgate.wasm; `requests` lists the paths asked for. */
export async function startModuleServer() {
  const requests = [];
  const server = http.createServer((req, res) => {
    requests.push(req.url);
    if (req.url !== '/fhirgate.wasm') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/wasm', 'content-length': MODULE.length });
    res.end(MODULE);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: server.address().port, requests, stop: () => new Promise((resolve) => server.close(resolve)) };
}

/**
 * A `startStack` editBootstrap that makes fhirgate's filter load its code from `origin` (cluster
 * `wasm_origin`, which the stack must define) pinned to `sha256`.
 */
export function remoteCode(origin, sha256 = MODULE_SHA) {
  return (b) => {
    const hcm = b.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
    const wasm = hcm.http_filters.find((f) => f.name === 'envoy.filters.http.wasm');
    wasm.typed_config.config.vm_config.code = {
      remote: {
        http_uri: { uri: `http://127.0.0.1:${origin.port}/fhirgate.wasm`, cluster: 'wasm_origin', timeout: '10s' },
        sha256,
      },
    };
  };
}
