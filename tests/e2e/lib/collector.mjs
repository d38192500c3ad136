// A small audit collector for the end-to-end suite: a node:http server on 127.0.0.1 that takes
// fhirgate's audit batches (`POST`, `application/x-ndjson`, one JSON record per line) and keeps
// them for the tests. `mode` chooses how it answers: 'ok' (204), 'fail' (500) or 'hang' (never);
// `stop()` takes it down (connection refused) and `start()` brings it back on the same port.
// Each batch records how it was answered (`answered`), so a soak can reconcile what was shipped.
import http from 'node:http';

/** Starts a collector; `port` 0 picks a free one. */
export async function startCollector({ port = 0 } = {}) {
  const collector = {
    port,
    mode: 'ok',
    /** Every batch received: `{ path, headers, body, records }`. */
    batches: [],
    /** Every record received, in arrival order. */
    get records() {
      return this.batches.flatMap((b) => b.records);
    },
  };
  const held = new Set();
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const records = [];
      for (const line of body.split('\n')) {
        if (line.trim() === '') continue;
        try {
          records.push(JSON.parse(line));
        } catch {
          records.push({ unparsable: line });
        }
      }
      // `answered`: how this batch was answered ('ok' 204, 'fail' 500, 'hang' never).
      collector.batches.push({ path: req.url, headers: req.headers, body, records, answered: collector.mode });
      if (collector.mode === 'hang') {
        held.add(res);
        return;
      }
      res.writeHead(collector.mode === 'fail' ? 500 : 204);
      res.end();
    });
  });
  const sockets = new Set();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  collector.start = () => new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(collector.port, '127.0.0.1', () => {
      collector.port = server.address().port;
      resolve(collector);
    });
  });
  collector.stop = () => new Promise((resolve) => {
    for (const res of held) res.destroy();
    held.clear();
    for (const s of sockets) s.destroy();
    if (!server.listening) {
      resolve();
      return;
    }
    server.close(() => resolve());
  });
  return collector.start();
}
