// DPoP keys and proofs (RFC 9449) made by the test client with node:crypto, independent of the
// filter: ES256 (P-256, signature as r||s) or EdDSA (Ed25519).
//
//   const key = makeDpopKey();
//   const dpop = proof(key, { htm: 'GET', htu: 'http://127.0.0.1:10000/fhir/Patient/1', accessToken });
import { createHash, generateKeyPairSync, randomUUID, sign } from 'node:crypto';

/** The RFC 7638 SHA-256 thumbprint of a public JWK (what the IdP writes to `cnf.jkt`). */
export function thumbprint(jwk) {
  const members = jwk.kty === 'EC' ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y }
    : jwk.kty === 'OKP' ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x }
      : { e: jwk.e, kty: jwk.kty, n: jwk.n };
  return createHash('sha256').update(JSON.stringify(members)).digest('base64url');
}

/** A fresh key pair for proofs: `{ alg, privateKey, jwk (public), privateJwk, thumbprint }`. */
export function makeDpopKey(alg = 'ES256') {
  const { privateKey, publicKey } = alg === 'EdDSA'
    ? generateKeyPairSync('ed25519')
    : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const { kty, crv, x, y } = publicKey.export({ format: 'jwk' });
  const jwk = y === undefined ? { kty, crv, x } : { kty, crv, x, y };
  return { alg, privateKey, jwk, privateJwk: privateKey.export({ format: 'jwk' }), thumbprint: thumbprint(jwk) };
}

const b64 = (value) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** base64url(SHA-256(access token)): the `ath` claim. */
export function ath(accessToken) {
  return createHash('sha256').update(accessToken).digest('base64url');
}

/**
 * A signed proof. `iat` (default now, seconds), `jti` (default a UUID); `header` and `claims` are
 * merged over the standard ones (a member set to `undefined` is removed), `signWith` signs with
 * another key than the one named in the header.
 */
export function proof(key, {
  htm, htu, accessToken, iat = Math.floor(Date.now() / 1000), jti = randomUUID(), header = {}, claims = {}, signWith = key,
}) {
  const h = { typ: 'dpop+jwt', alg: key.alg, jwk: key.jwk, ...header };
  const c = { htm, htu, iat, jti, ...(accessToken ? { ath: ath(accessToken) } : {}), ...claims };
  const input = `${b64(h)}.${b64(c)}`;
  const signature = signWith.alg === 'EdDSA'
    ? sign(null, Buffer.from(input), signWith.privateKey)
    : sign('sha256', Buffer.from(input), { key: signWith.privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}
