//! RSA signature verification (RFC 8017): RSASSA-PKCS1-v1_5 (RS256/384/512) and RSASSA-PSS with
//! MGF1 and a salt as long as the hash (PS256/384/512, RFC 7518 §3.5).
//!
//! `s^e mod n` uses crypto-bigint's Montgomery arithmetic with a variable-time square-and-multiply
//! over the public exponent (about 17 modular multiplications for e = 65537). The modulus is held
//! in the smallest of 2048, 3072 or 4096 bits that fits it.

use crypto_bigint::modular::runtime_mod::{DynResidue, DynResidueParams};
use crypto_bigint::{Limb, Uint, Word, U2048, U3072, U4096};
use sha2::{Digest, Sha256, Sha384, Sha512};
use thiserror::Error;

/// Smallest modulus accepted (bits).
pub const MIN_MODULUS_BITS: usize = 2048;
/// Largest modulus accepted (bits).
pub const MAX_MODULUS_BITS: usize = 4096;

/// Why a public key cannot be used by this implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RsaError {
    /// The modulus is shorter than [`MIN_MODULUS_BITS`] or longer than [`MAX_MODULUS_BITS`].
    #[error("RSA modulus size not supported")]
    ModulusSize,
    /// The modulus is even.
    #[error("RSA modulus is even")]
    EvenModulus,
    /// The exponent is even, below 3, or longer than 64 bits.
    #[error("RSA public exponent not supported")]
    Exponent,
}

impl RsaError {
    /// Stable machine code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            RsaError::ModulusSize => "rsa_modulus_size",
            RsaError::EvenModulus => "rsa_modulus_even",
            RsaError::Exponent => "rsa_exponent",
        }
    }
}

/// The hash of a signature scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RsaHash {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

/// The signature encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RsaPadding {
    /// EMSA-PKCS1-v1_5 with the DigestInfo of the hash (NULL parameters).
    Pkcs1v15,
    /// EMSA-PSS, MGF1 with the same hash, salt length equal to the hash length.
    Pss,
}

impl RsaHash {
    fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut d = D::new();
            for p in parts {
                d.update(p);
            }
            d.finalize().to_vec()
        }
        match self {
            RsaHash::Sha256 => run::<Sha256>(parts),
            RsaHash::Sha384 => run::<Sha384>(parts),
            RsaHash::Sha512 => run::<Sha512>(parts),
        }
    }

    fn len(self) -> usize {
        match self {
            RsaHash::Sha256 => 32,
            RsaHash::Sha384 => 48,
            RsaHash::Sha512 => 64,
        }
    }

    /// DER of the DigestInfo up to (and including) the OCTET STRING header of the hash.
    fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            RsaHash::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ],
            RsaHash::Sha384 => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x02, 0x05, 0x00, 0x04, 0x30,
            ],
            RsaHash::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x03, 0x05, 0x00, 0x04, 0x40,
            ],
        }
    }
}

/// A modulus in Montgomery form, sized to fit.
#[derive(Clone)]
enum Modulus {
    B2048(Box<DynResidueParams<{ U2048::LIMBS }>>),
    B3072(Box<DynResidueParams<{ U3072::LIMBS }>>),
    B4096(Box<DynResidueParams<{ U4096::LIMBS }>>),
}

/// An RSA public key prepared for repeated verification.
#[derive(Clone)]
pub struct RsaPublicKey {
    modulus: Modulus,
    /// Bit length of the modulus.
    bits: usize,
    /// Byte length of the modulus (and of every signature).
    k: usize,
    e: u64,
}

impl std::fmt::Debug for RsaPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RsaPublicKey")
            .field("bits", &self.bits)
            .field("e", &self.e)
            .finish()
    }
}

impl RsaPublicKey {
    /// Builds a key from the big-endian modulus and exponent (leading zero bytes allowed).
    pub fn new(n: &[u8], e: &[u8]) -> Result<Self, RsaError> {
        let n = strip_zeros(n);
        let e = strip_zeros(e);
        let bits = n
            .first()
            .map(|b| (n.len() - 1) * 8 + (8 - b.leading_zeros() as usize))
            .unwrap_or(0);
        if !(MIN_MODULUS_BITS..=MAX_MODULUS_BITS).contains(&bits) {
            return Err(RsaError::ModulusSize);
        }
        if n.last().is_none_or(|b| b & 1 == 0) {
            return Err(RsaError::EvenModulus);
        }
        if e.len() > 8 {
            return Err(RsaError::Exponent);
        }
        let e = e.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        if e < 3 || e & 1 == 0 {
            return Err(RsaError::Exponent);
        }
        let modulus = if bits <= 2048 {
            Modulus::B2048(Box::new(params(n)?))
        } else if bits <= 3072 {
            Modulus::B3072(Box::new(params(n)?))
        } else {
            Modulus::B4096(Box::new(params(n)?))
        };
        Ok(RsaPublicKey {
            modulus,
            bits,
            k: n.len(),
            e,
        })
    }

    /// Bit length of the modulus.
    pub fn bits(&self) -> usize {
        self.bits
    }

    /// Byte length of the modulus (the length of every signature).
    pub fn len_bytes(&self) -> usize {
        self.k
    }

    /// The public exponent.
    pub fn exponent(&self) -> u64 {
        self.e
    }

    /// True when `signature` is a valid signature of `message` under this key.
    pub fn verify(
        &self,
        padding: RsaPadding,
        hash: RsaHash,
        message: &[u8],
        signature: &[u8],
    ) -> bool {
        let Some(em) = self.public_op(signature) else {
            return false;
        };
        match padding {
            RsaPadding::Pkcs1v15 => pkcs1v15_ok(&em, hash, message),
            RsaPadding::Pss => pss_ok(&em, self.bits - 1, hash, message),
        }
    }

    /// RSAVP1 then I2OSP: `signature^e mod n` as `k` big-endian bytes. `None` when the signature
    /// is not exactly `k` bytes or not below `n`.
    fn public_op(&self, signature: &[u8]) -> Option<Vec<u8>> {
        if signature.len() != self.k {
            return None;
        }
        match &self.modulus {
            Modulus::B2048(p) => modpow(p, signature, self.e, self.k),
            Modulus::B3072(p) => modpow(p, signature, self.e, self.k),
            Modulus::B4096(p) => modpow(p, signature, self.e, self.k),
        }
    }
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes.get(start..).unwrap_or_default()
}

/// Big-endian bytes (at most `Uint::<L>::BYTES`) to an integer.
fn uint_from_be<const L: usize>(bytes: &[u8]) -> Option<Uint<L>> {
    if bytes.len() > L * Limb::BYTES {
        return None;
    }
    let mut words = [0 as Word; L];
    for (i, chunk) in bytes.rchunks(Limb::BYTES).enumerate() {
        let word = chunk
            .iter()
            .fold(0 as Word, |acc, b| (acc << 8) | Word::from(*b));
        *words.get_mut(i)? = word;
    }
    Some(Uint::from_words(words))
}

/// The low `k` bytes of an integer, big-endian.
fn uint_to_be<const L: usize>(x: &Uint<L>, k: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(L * Limb::BYTES);
    for word in x.as_words().iter().rev() {
        out.extend_from_slice(&word.to_be_bytes());
    }
    let skip = out.len().saturating_sub(k);
    out.split_off(skip)
}

fn params<const L: usize>(n: &[u8]) -> Result<DynResidueParams<L>, RsaError> {
    let n = uint_from_be::<L>(n).ok_or(RsaError::ModulusSize)?;
    #[allow(deprecated)] // `new` panics on an even modulus; this form reports it.
    let params = DynResidueParams::new_checked(&n);
    Option::from(params).ok_or(RsaError::EvenModulus)
}

/// `s^e mod n`, variable time in `e` (public), left-to-right square-and-multiply.
fn modpow<const L: usize>(
    params: &DynResidueParams<L>,
    signature: &[u8],
    e: u64,
    k: usize,
) -> Option<Vec<u8>> {
    let s = uint_from_be::<L>(signature)?;
    if s >= *params.modulus() {
        return None;
    }
    let base = DynResidue::new(&s, *params);
    let mut acc = base;
    let top = 63 - e.leading_zeros();
    for bit in (0..top).rev() {
        acc = acc.square();
        if (e >> bit) & 1 == 1 {
            acc = acc.mul(&base);
        }
    }
    Some(uint_to_be(&acc.retrieve(), k))
}

/// EMSA-PKCS1-v1_5: `00 01 FF.. 00 DigestInfo H`, at least 8 bytes of `FF`; compared whole.
fn pkcs1v15_ok(em: &[u8], hash: RsaHash, message: &[u8]) -> bool {
    let prefix = hash.digest_info_prefix();
    let t_len = prefix.len() + hash.len();
    let Some(ps_len) = em.len().checked_sub(t_len + 3) else {
        return false;
    };
    if ps_len < 8 {
        return false;
    }
    let mut expected = Vec::with_capacity(em.len());
    expected.extend_from_slice(&[0x00, 0x01]);
    expected.resize(2 + ps_len, 0xff);
    expected.push(0x00);
    expected.extend_from_slice(prefix);
    expected.extend_from_slice(&hash.digest(&[message]));
    expected == em
}

/// MGF1 (RFC 8017 B.2.1) XORed into `out`.
fn mgf1_xor(hash: RsaHash, seed: &[u8], out: &mut [u8]) {
    for (counter, chunk) in out.chunks_mut(hash.len()).enumerate() {
        let c = u32::try_from(counter).unwrap_or(u32::MAX).to_be_bytes();
        let mask = hash.digest(&[seed, &c]);
        for (o, m) in chunk.iter_mut().zip(mask) {
            *o ^= m;
        }
    }
}

/// EMSA-PSS-VERIFY (RFC 8017 §9.1.2) with `sLen = hLen`. `em` is the `k`-byte output of RSAVP1;
/// `em_bits` is `modBits - 1`.
fn pss_ok(em: &[u8], em_bits: usize, hash: RsaHash, message: &[u8]) -> bool {
    let h_len = hash.len();
    let s_len = h_len;
    let em_len = em_bits.div_ceil(8);
    // When modBits - 1 is a multiple of 8, I2OSP gave one more (zero) leading byte.
    let Some((lead, em)) = em.split_at_checked(em.len().saturating_sub(em_len)) else {
        return false;
    };
    if lead.iter().any(|b| *b != 0) || em.len() != em_len {
        return false;
    }
    if em_len < h_len + s_len + 2 || em.last() != Some(&0xbc) {
        return false;
    }
    let db_len = em_len - h_len - 1;
    let (Some(masked_db), Some(h)) = (em.get(..db_len), em.get(db_len..em_len - 1)) else {
        return false;
    };
    let unused_bits = 8 * em_len - em_bits;
    let top_mask = 0xffu8.checked_shr(unused_bits as u32).unwrap_or(0);
    if masked_db.first().is_none_or(|b| b & !top_mask != 0) {
        return false;
    }
    let mut db = masked_db.to_vec();
    mgf1_xor(hash, h, &mut db);
    if let Some(first) = db.first_mut() {
        *first &= top_mask;
    }
    let pad_len = em_len - h_len - s_len - 2;
    let (Some(zeros), Some(one), Some(salt)) =
        (db.get(..pad_len), db.get(pad_len), db.get(pad_len + 1..))
    else {
        return false;
    };
    if zeros.iter().any(|b| *b != 0) || *one != 0x01 {
        return false;
    }
    let m_hash = hash.digest(&[message]);
    let h2 = hash.digest(&[&[0u8; 8], &m_hash, salt]);
    h2 == h
}
