//! Differential tests against the `rsa` crate (which jwt-simple uses) and jwt-simple itself, and
//! Wycheproof-style edge cases built with the raw private-key operation.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use std::sync::OnceLock;

use ::rsa::pkcs1v15::Pkcs1v15Sign;
use ::rsa::rand_core::OsRng;
use ::rsa::traits::{PrivateKeyParts, PublicKeyParts};
use ::rsa::{BigUint, Pss, RsaPrivateKey};
use sha2::{Digest, Sha256, Sha384, Sha512};

use super::rsa::*;

struct Keys {
    k2048: RsaPrivateKey,
    k2049: RsaPrivateKey,
    k3072: RsaPrivateKey,
    k4096: RsaPrivateKey,
}

fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| Keys {
        k2048: RsaPrivateKey::new(&mut OsRng, 2048).unwrap(),
        k2049: RsaPrivateKey::new(&mut OsRng, 2049).unwrap(),
        k3072: RsaPrivateKey::new(&mut OsRng, 3072).unwrap(),
        k4096: RsaPrivateKey::new(&mut OsRng, 4096).unwrap(),
    })
}

fn all_keys() -> [&'static RsaPrivateKey; 4] {
    let k = keys();
    [&k.k2048, &k.k2049, &k.k3072, &k.k4096]
}

fn public(key: &RsaPrivateKey) -> RsaPublicKey {
    RsaPublicKey::new(&key.n().to_bytes_be(), &key.e().to_bytes_be()).unwrap()
}

/// Deterministic pseudo-random bytes (xorshift).
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn digest(hash: RsaHash, msg: &[u8]) -> Vec<u8> {
    match hash {
        RsaHash::Sha256 => Sha256::digest(msg).to_vec(),
        RsaHash::Sha384 => Sha384::digest(msg).to_vec(),
        RsaHash::Sha512 => Sha512::digest(msg).to_vec(),
    }
}

fn sign_pkcs1(key: &RsaPrivateKey, hash: RsaHash, msg: &[u8]) -> Vec<u8> {
    let scheme = match hash {
        RsaHash::Sha256 => Pkcs1v15Sign::new::<Sha256>(),
        RsaHash::Sha384 => Pkcs1v15Sign::new::<Sha384>(),
        RsaHash::Sha512 => Pkcs1v15Sign::new::<Sha512>(),
    };
    key.sign(scheme, &digest(hash, msg)).unwrap()
}

fn sign_pss(key: &RsaPrivateKey, hash: RsaHash, msg: &[u8], salt: usize) -> Vec<u8> {
    let scheme = match hash {
        RsaHash::Sha256 => Pss::new_with_salt::<Sha256>(salt),
        RsaHash::Sha384 => Pss::new_with_salt::<Sha384>(salt),
        RsaHash::Sha512 => Pss::new_with_salt::<Sha512>(salt),
    };
    key.sign_with_rng(&mut OsRng, scheme, &digest(hash, msg))
        .unwrap()
}

/// The raw private-key operation on an encoded message: `em^d mod n`, `k` bytes.
fn raw_sign(key: &RsaPrivateKey, em: &[u8]) -> Vec<u8> {
    let s = BigUint::from_bytes_be(em).modpow(key.d(), key.n());
    left_pad(&s.to_bytes_be(), key.size())
}

fn left_pad(b: &[u8], k: usize) -> Vec<u8> {
    let mut out = vec![0u8; k.saturating_sub(b.len())];
    out.extend_from_slice(b);
    out
}

const HASHES: [RsaHash; 3] = [RsaHash::Sha256, RsaHash::Sha384, RsaHash::Sha512];

const SHA256_PREFIX: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

fn pkcs1_em(k: usize, prefix: &[u8], h: &[u8]) -> Vec<u8> {
    let mut em = vec![0x00, 0x01];
    em.resize(k - prefix.len() - h.len() - 1, 0xff);
    em.push(0x00);
    em.extend_from_slice(prefix);
    em.extend_from_slice(h);
    em
}

#[test]
fn pkcs1v15_differential_random_messages() {
    for (i, key) in all_keys().into_iter().enumerate() {
        let pk = public(key);
        assert_eq!(pk.bits(), key.n().bits());
        for hash in HASHES {
            for round in 0..3u64 {
                let msg = bytes(round * 31 + i as u64, (round as usize) * 97);
                let sig = sign_pkcs1(key, hash, &msg);
                assert!(pk.verify(RsaPadding::Pkcs1v15, hash, &msg, &sig));
                // the other scheme, another hash, another message: refused
                assert!(!pk.verify(RsaPadding::Pss, hash, &msg, &sig));
                let other = if hash == RsaHash::Sha256 {
                    RsaHash::Sha384
                } else {
                    RsaHash::Sha256
                };
                assert!(!pk.verify(RsaPadding::Pkcs1v15, other, &msg, &sig));
                let mut msg2 = msg.clone();
                msg2.push(0);
                assert!(!pk.verify(RsaPadding::Pkcs1v15, hash, &msg2, &sig));
            }
        }
    }
}

#[test]
fn pss_differential_random_messages() {
    for (i, key) in all_keys().into_iter().enumerate() {
        let pk = public(key);
        for hash in HASHES {
            for round in 0..3u64 {
                let msg = bytes(round * 17 + i as u64 + 5, 1 + (round as usize) * 131);
                let sig = sign_pss(key, hash, &msg, digest(hash, b"").len());
                assert!(pk.verify(RsaPadding::Pss, hash, &msg, &sig), "{i} {hash:?}");
                assert!(!pk.verify(RsaPadding::Pkcs1v15, hash, &msg, &sig));
                assert!(!pk.verify(RsaPadding::Pss, hash, b"other", &sig));
            }
        }
    }
}

#[test]
fn pss_salt_length_must_equal_hash_length() {
    let key = &keys().k2048;
    let pk = public(key);
    for salt in [0usize, 20, 31, 33, 64] {
        let sig = sign_pss(key, RsaHash::Sha256, b"m", salt);
        assert!(
            !pk.verify(RsaPadding::Pss, RsaHash::Sha256, b"m", &sig),
            "salt {salt}"
        );
    }
    let sig = sign_pss(key, RsaHash::Sha256, b"m", 32);
    assert!(pk.verify(RsaPadding::Pss, RsaHash::Sha256, b"m", &sig));
}

#[test]
fn every_single_bit_flip_is_refused() {
    let key = &keys().k2048;
    let pk = public(key);
    let msg = b"header.payload";
    let good = [
        (RsaPadding::Pkcs1v15, sign_pkcs1(key, RsaHash::Sha256, msg)),
        (RsaPadding::Pss, sign_pss(key, RsaHash::Sha256, msg, 32)),
    ];
    for (padding, sig) in good {
        for byte in (0..sig.len()).step_by(7) {
            let mut bad = sig.clone();
            bad[byte] ^= 1 << (byte % 8);
            assert!(!pk.verify(padding, RsaHash::Sha256, msg, &bad));
        }
    }
}

#[test]
fn signature_length_and_range() {
    let key = &keys().k2048;
    let pk = public(key);
    let sig = sign_pkcs1(key, RsaHash::Sha256, b"m");
    assert!(pk.verify(RsaPadding::Pkcs1v15, RsaHash::Sha256, b"m", &sig));
    // one byte short (leading byte dropped), one byte long (leading zero added), empty
    assert!(!pk.verify(RsaPadding::Pkcs1v15, RsaHash::Sha256, b"m", &sig[1..]));
    let mut long = vec![0u8];
    long.extend_from_slice(&sig);
    assert!(!pk.verify(RsaPadding::Pkcs1v15, RsaHash::Sha256, b"m", &long));
    assert!(!pk.verify(RsaPadding::Pkcs1v15, RsaHash::Sha256, b"m", &[]));
    // s + n: same residue, but not below n
    let n = key.n();
    let s_plus_n = BigUint::from_bytes_be(&sig) + n;
    let bytes = s_plus_n.to_bytes_be();
    if bytes.len() == sig.len() {
        assert!(!pk.verify(RsaPadding::Pkcs1v15, RsaHash::Sha256, b"m", &bytes));
    }
    // s = n and s = n - 1, 0, 1
    let n_bytes = n.to_bytes_be();
    assert!(!pk.verify(RsaPadding::Pkcs1v15, RsaHash::Sha256, b"m", &n_bytes));
    let n_minus_1 = left_pad(&(n - 1u32).to_bytes_be(), 256);
    assert!(!pk.verify(RsaPadding::Pkcs1v15, RsaHash::Sha256, b"m", &n_minus_1));
    assert!(!pk.verify(RsaPadding::Pkcs1v15, RsaHash::Sha256, b"m", &[0u8; 256]));
    let mut one = [0u8; 256];
    one[255] = 1;
    assert!(!pk.verify(RsaPadding::Pkcs1v15, RsaHash::Sha256, b"m", &one));
    assert!(!pk.verify(RsaPadding::Pkcs1v15, RsaHash::Sha256, b"m", &[0xffu8; 256]));
}

#[test]
fn pkcs1_encoding_variants_are_refused() {
    let key = &keys().k2048;
    let pk = public(key);
    let h = digest(RsaHash::Sha256, b"m");
    let k = 256;
    let ok = pkcs1_em(k, &SHA256_PREFIX, &h);
    assert!(pk.verify(
        RsaPadding::Pkcs1v15,
        RsaHash::Sha256,
        b"m",
        &raw_sign(key, &ok)
    ));

    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut v = ok.clone();
    v[1] = 0x02;
    cases.push(("block type 2", v));
    let mut v = ok.clone();
    v[5] = 0xfe;
    cases.push(("padding byte not ff", v));
    // DigestInfo without the NULL parameters (some libraries accept it; we do not)
    let no_null: Vec<u8> = [
        &[0x30, 0x2f, 0x30, 0x0b, 0x06, 0x09][..],
        &SHA256_PREFIX[6..15],
        &[0x04, 0x20],
    ]
    .concat();
    cases.push(("DigestInfo without NULL", pkcs1_em(k, &no_null, &h)));
    let mut wrong_oid = SHA256_PREFIX;
    wrong_oid[14] = 0x02; // SHA-384's OID with a SHA-256 length
    cases.push(("wrong OID", pkcs1_em(k, &wrong_oid, &h)));
    let mut h_bad = h.clone();
    h_bad[0] ^= 1;
    cases.push(("wrong hash", pkcs1_em(k, &SHA256_PREFIX, &h_bad)));
    // hash moved left with trailing garbage (Bleichenbacher'06-style)
    let mut short = pkcs1_em(k - 8, &SHA256_PREFIX, &h);
    short.extend_from_slice(&[0xab; 8]);
    cases.push(("garbage after the hash", short));
    // no zero separator
    let mut v = ok.clone();
    let sep = k - SHA256_PREFIX.len() - h.len() - 1;
    v[sep] = 0xff;
    cases.push(("no separator", v));
    // bare hash, no DigestInfo
    cases.push(("no DigestInfo", pkcs1_em(k, &[], &h)));
    for (name, em) in cases {
        let sig = raw_sign(key, &em);
        assert!(
            !pk.verify(RsaPadding::Pkcs1v15, RsaHash::Sha256, b"m", &sig),
            "{name}"
        );
    }
}

/// A PSS encoding built here (sLen = 32, SHA-256), optionally corrupted by `tweak`.
fn pss_em(key: &RsaPrivateKey, msg: &[u8], tweak: impl Fn(&mut Vec<u8>, &mut Vec<u8>)) -> Vec<u8> {
    let em_bits = key.n().bits() - 1;
    let em_len = em_bits.div_ceil(8);
    let salt = bytes(9, 32);
    let m_hash = Sha256::digest(msg);
    let h = Sha256::new()
        .chain_update([0u8; 8])
        .chain_update(m_hash)
        .chain_update(&salt)
        .finalize()
        .to_vec();
    let mut db = vec![0u8; em_len - 32 - 32 - 2];
    db.push(0x01);
    db.extend_from_slice(&salt);
    let mut h_out = h.clone();
    tweak(&mut db, &mut h_out);
    let mut mask = Vec::new();
    let mut counter = 0u32;
    while mask.len() < db.len() {
        mask.extend(
            Sha256::new()
                .chain_update(&h)
                .chain_update(counter.to_be_bytes())
                .finalize(),
        );
        counter += 1;
    }
    for (d, m) in db.iter_mut().zip(mask) {
        *d ^= m;
    }
    db[0] &= 0xff >> (8 * em_len - em_bits);
    let mut em = db;
    em.extend_from_slice(&h_out);
    em.push(0xbc);
    left_pad(&em, key.size())
}

#[test]
fn pss_encoding_variants() {
    for key in [&keys().k2048, &keys().k2049] {
        let pk = public(key);
        let good = pss_em(key, b"m", |_, _| {});
        assert!(pk.verify(
            RsaPadding::Pss,
            RsaHash::Sha256,
            b"m",
            &raw_sign(key, &good)
        ));

        let bad_trailer = {
            let mut em = good.clone();
            *em.last_mut().unwrap() = 0xbd;
            em
        };
        let no_one = pss_em(key, b"m", |db, _| {
            let i = db.len() - 33;
            db[i] = 0x02;
        });
        let nonzero_pad = pss_em(key, b"m", |db, _| db[1] = 0x01);
        let wrong_h = pss_em(key, b"m", |_, h| h[3] ^= 0x40);
        for (name, em) in [
            ("trailer", bad_trailer),
            ("no 0x01", no_one),
            ("padding", nonzero_pad),
            ("H", wrong_h),
        ] {
            let sig = raw_sign(key, &em);
            assert!(
                !pk.verify(RsaPadding::Pss, RsaHash::Sha256, b"m", &sig),
                "{name}"
            );
        }
        // top bits of maskedDB set
        let em_bits = key.n().bits() - 1;
        let em_len = em_bits.div_ceil(8);
        let mut em = good.clone();
        let first = key.size() - em_len;
        if 8 * em_len > em_bits {
            em[first] |= 0x80;
            let sig = raw_sign(key, &em);
            assert!(!pk.verify(RsaPadding::Pss, RsaHash::Sha256, b"m", &sig));
        }
    }
}

#[test]
fn unusable_keys_are_refused() {
    let key = &keys().k2048;
    let n = key.n().to_bytes_be();
    let e = key.e().to_bytes_be();
    assert!(RsaPublicKey::new(&n, &e).is_ok());
    let mut padded = vec![0u8, 0];
    padded.extend_from_slice(&n);
    assert!(RsaPublicKey::new(&padded, &[0, 1, 0, 1]).is_ok());
    assert_eq!(
        RsaPublicKey::new(&n[..128], &e).unwrap_err(),
        RsaError::ModulusSize
    );
    assert_eq!(
        RsaPublicKey::new(&[0xff; 513], &e).unwrap_err(),
        RsaError::ModulusSize
    );
    assert_eq!(
        RsaPublicKey::new(&[], &e).unwrap_err(),
        RsaError::ModulusSize
    );
    let mut even = n.clone();
    *even.last_mut().unwrap() &= 0xfe;
    assert_eq!(
        RsaPublicKey::new(&even, &e).unwrap_err(),
        RsaError::EvenModulus
    );
    for bad_e in [&[][..], &[1], &[2], &[1, 0, 0], &[1; 9]] {
        assert_eq!(
            RsaPublicKey::new(&n, bad_e).unwrap_err(),
            RsaError::Exponent
        );
    }
    assert_eq!(RsaError::Exponent.code(), "rsa_exponent");
}

#[test]
fn exponent_three_works() {
    // e = 3 keys exist in the wild; the arithmetic must not assume 65537.
    let key = RsaPrivateKey::new_with_exp(&mut OsRng, 2048, &BigUint::from(3u32)).unwrap();
    let pk = public(&key);
    let sig = sign_pkcs1(&key, RsaHash::Sha256, b"m");
    assert!(pk.verify(RsaPadding::Pkcs1v15, RsaHash::Sha256, b"m", &sig));
    assert!(!pk.verify(RsaPadding::Pkcs1v15, RsaHash::Sha256, b"n", &sig));
}

#[test]
fn key_debug_shows_no_material() {
    let pk = public(&keys().k2048);
    assert_eq!(format!("{pk:?}"), "RsaPublicKey { bits: 2048, e: 65537 }");
}

#[test]
fn jwt_simple_tokens_differential() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use jwt_simple::prelude::*;

    fn check<K: RSAPublicKeyLike>(
        pk_js: &K,
        pk: &RsaPublicKey,
        padding: RsaPadding,
        hash: RsaHash,
        token: &str,
    ) {
        let (input, sig) = token.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        let ours = pk.verify(padding, hash, input.as_bytes(), &sig);
        let theirs = pk_js.verify_token::<NoCustomClaims>(token, None).is_ok();
        assert_eq!(ours, theirs, "{token}");
    }
    fn tampered(token: &str, i: usize) -> String {
        let (input, sig) = token.rsplit_once('.').unwrap();
        let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        sig[i % 256] ^= 0x10;
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
    let rs = RS256KeyPair::generate(2048).unwrap();
    let ps = PS256KeyPair::generate(2048).unwrap();
    let rc = rs.public_key().to_components();
    let pc = ps.public_key().to_components();
    let rpk = RsaPublicKey::new(&rc.n, &rc.e).unwrap();
    let ppk = RsaPublicKey::new(&pc.n, &pc.e).unwrap();
    for i in 0..8usize {
        let claims = Claims::create(Duration::from_hours(1)).with_subject(format!("s{i}"));
        let t = rs.sign(claims.clone()).unwrap();
        check(
            &rs.public_key(),
            &rpk,
            RsaPadding::Pkcs1v15,
            RsaHash::Sha256,
            &t,
        );
        check(
            &rs.public_key(),
            &rpk,
            RsaPadding::Pkcs1v15,
            RsaHash::Sha256,
            &tampered(&t, i * 37),
        );
        let t = ps.sign(claims).unwrap();
        check(&ps.public_key(), &ppk, RsaPadding::Pss, RsaHash::Sha256, &t);
        check(
            &ps.public_key(),
            &ppk,
            RsaPadding::Pss,
            RsaHash::Sha256,
            &tampered(&t, i * 41),
        );
        assert!(ppk.verify(
            RsaPadding::Pss,
            RsaHash::Sha256,
            t.rsplit_once('.').unwrap().0.as_bytes(),
            &URL_SAFE_NO_PAD
                .decode(t.rsplit_once('.').unwrap().1)
                .unwrap()
        ));
    }
}
