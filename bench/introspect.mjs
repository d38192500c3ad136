// A tiny RFC 7662 endpoint for scenario (c): every `opaque-*` token is active.
import http from 'node:http';
const [port, issuer, audience] = process.argv.slice(2);
http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => { body += c; });
  req.on('end', () => {
    const token = new URLSearchParams(body).get('token') || '';
    const now = Math.floor(Date.now() / 1000);
    const active = token.startsWith('opaque-');
    const out = active ? {
      active: true, iss: issuer, aud: audience, sub: 'user-o', client_id: 'bench-app', exp: now + 3600,
      iat: now, scope: 'launch/patient patient/Observation.rs patient/Patient.rs', patient: '123',
      consent: 'research', token_type: 'Bearer',
    } : { active: false };
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(out));
  });
}).listen(Number(port), '127.0.0.1');
