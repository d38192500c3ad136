// A scripted upstream beside the FHIR router: answers what a test tells it, for the answers the
// router never gives (another patient for a read, includes of any type, duplicate members,
// malformed shapes, compressed, truncated, chunked, oversized or non-JSON bodies).
//
//   const script = scripted(fhir);          // wraps a running FhirServer (lib/fhir.mjs)
//   script.answer('/fhir/Patient/pat-alice', { json: { resourceType: 'Patient', id: 'pat-bob' } });
//
// An answer is matched on the exact request URL (path and query, as the upstream receives it);
// every other request still goes to the router. An answer is `{ status = 200, headers, json |
// body | chunks, truncate, delayMs }`:
//   - `json`: serialised with JSON.stringify; `body`: a string or Buffer sent as is;
//   - `chunks`: strings/Buffers written one by one `delayMs` apart (no content-length: chunked);
//   - `truncate: n`: announces the whole body's content-length, sends its first n bytes, then
//     destroys the connection (an upstream that dies mid-body);
//   - `headers` replace the default `content-type: application/fhir+json`.
// `script.hits(path)` counts the requests answered for a path.
const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

export function scripted(fhir) {
  const answers = new Map();
  const hits = new Map();
  const route = fhir.handle.bind(fhir);
  fhir.handle = async (req, res) => {
    const a = answers.get(req.url);
    if (!a) return route(req, res);
    hits.set(req.url, (hits.get(req.url) ?? 0) + 1);
    for await (const _ of req) { /* drain the request */ }
    const headers = a.headers ?? { 'content-type': 'application/fhir+json' };
    let body = a.json !== undefined ? JSON.stringify(a.json) : a.body ?? '';
    if (!Buffer.isBuffer(body)) body = Buffer.from(body);
    if (a.chunks) {
      res.writeHead(a.status ?? 200, headers);
      for (const c of a.chunks) {
        res.write(c);
        await sleep(a.delayMs ?? 5);
      }
      res.end();
      return undefined;
    }
    if (a.truncate !== undefined) {
      res.writeHead(a.status ?? 200, { ...headers, 'content-length': body.length });
      res.write(body.subarray(0, a.truncate));
      await sleep(a.delayMs ?? 20);
      res.socket?.destroy();
      return undefined;
    }
    res.writeHead(a.status ?? 200, { ...headers, 'content-length': body.length });
    res.end(body);
    return undefined;
  };
  return {
    answer(path, spec) { answers.set(path, spec); },
    forget(path) { answers.delete(path); },
    hits(path) { return hits.get(path) ?? 0; },
  };
}
