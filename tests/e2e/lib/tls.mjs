// A throwaway PKI for the mTLS tests, made with the `openssl` command at test time (nothing is
// committed): a test CA, a server certificate for 127.0.0.1/localhost (Envoy's TLS listener and
// the IdP's token endpoint), two client certificates from that CA (`alice`, `mallory`), and a
// client certificate from another CA (`rogue`, same subject as alice).
//
//   const pki = makePki();      // files in a fresh temp dir; pki.alice.cert / .key / .der / .x5t
//   ...
//   pki.remove();
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

function openssl(args, cwd) {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

function read(dir, name) {
  const certFile = path.join(dir, `${name}.pem`);
  const keyFile = path.join(dir, `${name}.key`);
  const cert = fs.readFileSync(certFile, 'utf8');
  const der = Buffer.from(cert.replace(/-----(BEGIN|END) CERTIFICATE-----|\s/g, ''), 'base64');
  const digest = createHash('sha256').update(der).digest();
  return {
    name,
    certFile,
    keyFile,
    cert,
    key: fs.readFileSync(keyFile, 'utf8'),
    der,
    /** `cnf["x5t#S256"]` of a token bound to this certificate. */
    x5t: digest.toString('base64url'),
    /** What Envoy reports as `connection.sha256_peer_certificate_digest`. */
    sha256Hex: digest.toString('hex'),
  };
}

function makeCa(dir, name, cn) {
  openssl([
    'req', '-x509', ...EC_KEY, '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2',
    '-subj', `/CN=${cn}`,
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ], dir);
  return read(dir, name);
}

function issue(dir, name, cn, ca, { server = false } = {}) {
  openssl(['req', ...EC_KEY, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], dir);
  const ext = [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature',
    server ? 'extendedKeyUsage=serverAuth' : 'extendedKeyUsage=clientAuth',
    server ? 'subjectAltName=DNS:localhost,IP:127.0.0.1' : `subjectAltName=DNS:${cn}.devices.example.org`,
  ].join('\n');
  fs.writeFileSync(path.join(dir, `${name}.ext`), `${ext}\n`);
  openssl([
    'x509', '-req', '-in', `${name}.csr`, '-CA', ca.certFile, '-CAkey', ca.keyFile,
    '-set_serial', `0x${randomBytes(8).toString('hex')}`, '-days', '2', '-sha256',
    '-extfile', `${name}.ext`, '-out', `${name}.pem`,
  ], dir);
  return read(dir, name);
}

/** Creates the PKI in `dir` (default: a new temp dir). */
export function makePki(dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhirgate-pki-'))) {
  fs.mkdirSync(dir, { recursive: true });
  const ca = makeCa(dir, 'ca', 'fhirgate test CA');
  const otherCa = makeCa(dir, 'other-ca', 'another CA');
  return {
    dir,
    ca,
    otherCa,
    server: issue(dir, 'server', 'localhost', ca, { server: true }),
    alice: issue(dir, 'alice', 'alice-device', ca),
    mallory: issue(dir, 'mallory', 'mallory-device', ca),
    rogue: issue(dir, 'rogue', 'alice-device', otherCa),
    remove() {
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

// Standalone: `node lib/tls.mjs <dir>` writes the PKI to <dir> (used by `make envoy-certs` for
// envoy/envoy.yaml's TLS listener) and prints the files.
if (import.meta.url === `file://${process.argv[1]}`) {
  const dir = process.argv[2];
  if (!dir) {
    console.error('usage: node lib/tls.mjs <dir>');
    process.exit(2);
  }
  const pki = makePki(path.resolve(dir));
  for (const name of ['ca', 'server', 'alice', 'mallory']) {
    console.log(`${name}: ${pki[name].certFile} ${pki[name].keyFile}`);
  }
}
