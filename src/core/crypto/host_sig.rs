//! What the host's own signature check needs, and nothing more: DER encodings of public keys and
//! ECDSA signatures, and the protobuf messages of Envoy's `verify_signature` foreign function.
//!
//! Envoy offers BoringSSL to Wasm modules as the foreign function `verify_signature`. Its
//! argument is a serialized `envoy.source.extensions.common.wasm.VerifySignatureArguments`
//! (Envoy's `source/extensions/common/wasm/ext/verify_signature.proto`):
//!
//! ```text
//! string hash_function = 1;  // "sha256", "sha384", "sha512" (BoringSSL EVP_MD by name)
//! bytes  public_key    = 2;  // DER SubjectPublicKeyInfo (EVP_parse_public_key)
//! bytes  signature     = 3;  // RSA: the k-byte signature; ECDSA: DER Ecdsa-Sig-Value
//! bytes  text          = 4;  // the signed bytes (hashed by the host)
//! string public_key_pem = 5; // (not used here: exclusive with public_key)
//! ```
//!
//! and its answer a `VerifySignatureResult { bool result = 1; string error = 2; }`. The host
//! runs `EVP_DigestVerify` with the key's default scheme: PKCS #1 v1.5 for RSA keys (so PS*
//! never goes there), ECDSA for EC keys. Pure encoding: no I/O.

/// DER SubjectPublicKeyInfo of an RSA key (`rsaEncryption`, NULL parameters) from its big-endian
/// modulus and exponent (leading zeros are stripped; both must be non-zero).
pub fn rsa_spki(n: &[u8], e: &[u8]) -> Vec<u8> {
    let mut rsa_key = Vec::with_capacity(n.len() + e.len() + 16);
    der_uint(&mut rsa_key, n);
    der_uint(&mut rsa_key, e);
    let rsa_key = der_tlv(0x30, &rsa_key);
    // AlgorithmIdentifier { rsaEncryption (1.2.840.113549.1.1.1), NULL }
    const ALG: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    spki(ALG, &rsa_key)
}

/// The named curves whose keys the host is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    /// NIST P-256 (secp256r1).
    P256,
    /// NIST P-384 (secp384r1).
    P384,
}

impl Curve {
    /// Length of one scalar (and one coordinate) in bytes.
    pub fn scalar_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
        }
    }
}

/// DER SubjectPublicKeyInfo of an EC key (`id-ecPublicKey` with the named curve) from its SEC1
/// uncompressed point (`04 || x || y`, already checked to be on the curve by the caller).
pub fn ec_spki(curve: Curve, sec1: &[u8]) -> Vec<u8> {
    // AlgorithmIdentifier { id-ecPublicKey (1.2.840.10045.2.1), namedCurve }
    const P256: &[u8] = &[
        0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86,
        0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
    ];
    const P384: &[u8] = &[
        0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b, 0x81,
        0x04, 0x00, 0x22,
    ];
    spki(
        match curve {
            Curve::P256 => P256,
            Curve::P384 => P384,
        },
        sec1,
    )
}

/// The DER `Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }` of a JWS ECDSA signature
/// (`r || s`, each exactly [`Curve::scalar_len`] bytes, RFC 7518 §3.4). `None` for any other
/// length. Range checks (`0 < r, s < n`) are the caller's (and the host's).
pub fn ecdsa_sig_der(curve: Curve, raw: &[u8]) -> Option<Vec<u8>> {
    let len = curve.scalar_len();
    if raw.len() != 2 * len {
        return None;
    }
    let (r, s) = raw.split_at(len);
    let mut body = Vec::with_capacity(raw.len() + 6);
    der_uint(&mut body, r);
    der_uint(&mut body, s);
    Some(der_tlv(0x30, &body))
}

/// The serialized `VerifySignatureArguments` (fields in number order, DER key in `public_key`).
pub fn verify_arguments(
    hash: &str,
    public_key_der: &[u8],
    signature: &[u8],
    text: &[u8],
) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(hash.len() + public_key_der.len() + signature.len() + text.len() + 20);
    pb_bytes(&mut out, 1, hash.as_bytes());
    pb_bytes(&mut out, 2, public_key_der);
    pb_bytes(&mut out, 3, signature);
    pb_bytes(&mut out, 4, text);
    out
}

/// The `result` of a serialized `VerifySignatureResult` (absent: `false`, as in proto3).
/// `None` when the bytes are not such a message (a field of the wrong wire type, a truncated
/// field, a malformed varint).
pub fn verify_result(message: &[u8]) -> Option<bool> {
    let mut result = false;
    let mut rest = message;
    while !rest.is_empty() {
        let (key, after) = varint(rest)?;
        let field = key >> 3;
        rest = match (field, key & 7) {
            (1, 0) => {
                let (v, after) = varint(after)?;
                result = v != 0;
                after
            }
            (_, 0) => varint(after)?.1,
            (_, 2) => {
                let (len, after) = varint(after)?;
                let len = usize::try_from(len).ok()?;
                after.get(len..)?
            }
            (_, 1) => after.get(8..)?,
            (_, 5) => after.get(4..)?,
            _ => return None,
        };
    }
    Some(result)
}

fn varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (i, b) in bytes.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, bytes.get(i + 1..)?));
        }
    }
    None
}

fn pb_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn pb_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    pb_varint(out, (field << 3) | 2);
    pb_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// SubjectPublicKeyInfo ::= SEQUENCE { algorithm, BIT STRING (no unused bits) of the key }.
fn spki(algorithm: &[u8], key: &[u8]) -> Vec<u8> {
    let mut bits = Vec::with_capacity(key.len() + 1);
    bits.push(0);
    bits.extend_from_slice(key);
    let mut body = Vec::with_capacity(algorithm.len() + bits.len() + 5);
    body.extend_from_slice(algorithm);
    body.extend_from_slice(&der_tlv(0x03, &bits));
    der_tlv(0x30, &body)
}

/// A DER INTEGER of the unsigned big-endian `value`: minimal (leading zeros stripped), with a
/// zero byte before a high bit; zero is `02 01 00`.
fn der_uint(out: &mut Vec<u8>, value: &[u8]) {
    let start = value.iter().position(|b| *b != 0).unwrap_or(value.len());
    let digits = value.get(start..).unwrap_or_default();
    let mut body = Vec::with_capacity(digits.len() + 1);
    if digits.first().is_none_or(|b| b & 0x80 != 0) {
        body.push(0);
    }
    body.extend_from_slice(digits);
    out.extend_from_slice(&der_tlv(0x02, &body));
}

/// Tag, DER definite length, contents.
fn der_tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
    let len = contents.len();
    let mut out = Vec::with_capacity(len + 6);
    out.push(tag);
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u64).to_be_bytes();
        let first = bytes.iter().position(|b| *b != 0).unwrap_or(7);
        let significant = bytes.get(first..).unwrap_or_default();
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(contents);
    out
}
