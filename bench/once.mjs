// Sends `GET <path>` once per token of a file, CONNS requests in flight on keep-alive
// connections, and prints `requests non2xx seconds` (wrk cannot stop after a fixed number of
// requests: its main thread sleeps for the whole duration).
//   node bench/once.mjs <url> <path> <token-file> <conns>
import fs from 'node:fs';
import http from 'node:http';

const [url, reqPath, file, connsArg] = process.argv.slice(2);
const tokens = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
const conns = Number(connsArg || 16);
const { hostname, port } = new URL(url);
const agent = new http.Agent({ keepAlive: true, maxSockets: conns });
let next = 0;
let non2xx = 0;
let done = 0;
function one(token) {
  return new Promise((resolve) => {
    const req = http.request({ hostname, port, path: reqPath, agent, headers: { authorization: `Bearer ${token}` } }, (res) => {
      if (res.statusCode < 200 || res.statusCode > 299) non2xx += 1;
      res.resume();
      res.on('end', resolve);
    });
    req.on('error', () => { non2xx += 1; resolve(); });
    req.end();
  });
}
async function lane() {
  while (next < tokens.length) {
    const t = tokens[next];
    next += 1;
    await one(t);
    done += 1;
  }
}
const t0 = process.hrtime.bigint();
await Promise.all(Array.from({ length: conns }, lane));
const secs = Number(process.hrtime.bigint() - t0) / 1e9;
agent.destroy();
console.log(`${done} ${non2xx} ${secs.toFixed(3)}`);
