// Plain HTTP/1.1 requests without connection reuse: a server stopped and restarted by a test
// (IdP outage) never leaves a stale pooled socket behind, and repeated headers stay repeated.
import http from 'node:http';
import https from 'node:https';

/**
 * Sends one HTTP/1.1 request to `port` without keep-alive and resolves `{ status, headers, text, json }`.
 * `headers` may be an object (array values become repeated header lines) or a flat raw array.
 */
export function request(port, pathName, options = {}) {
  return send(http, { host: '127.0.0.1', port, path: pathName }, options);
}

/**
 * `request` over TLS to 127.0.0.1:`port`, trusting `ca` (PEM); with `cert`/`key` (PEM) the client
 * presents that certificate. Also resolves `{ status, headers, text, json }`.
 */
export function requestTls(port, pathName, { ca, cert, key, ...options } = {}) {
  return send(https, { host: '127.0.0.1', port, path: pathName, ca, cert, key, servername: 'localhost' }, options);
}

function send(lib, target, { method = 'GET', headers = {}, body, timeoutMs = 15_000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = lib.request({ ...target, method, headers, agent: false, timeout: timeoutMs }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try {
          json = text ? JSON.parse(text) : undefined;
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode, headers: res.headers, rawHeaders: res.rawHeaders, text, json });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`request ${method} ${target.path} timed out`)));
    req.on('error', reject);
    if (body !== undefined) req.write(typeof body === 'string' ? body : JSON.stringify(body));
    req.end();
  });
}

/** `request` by absolute `http://127.0.0.1:port/path` URL. */
export function requestUrl(url, options) {
  const u = new URL(url);
  return request(Number(u.port), `${u.pathname}${u.search}`, options);
}
