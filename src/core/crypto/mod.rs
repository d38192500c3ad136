//! Verification-only public-key primitives (RSA; ECDSA and EdDSA come from `p256`/`p384` and
//! `ed25519-compact`, see `src/token/verifier.rs`).
//!
//! Pure logic: no I/O, no clock, nothing secret (every input of a signature verification is
//! public, so variable-time arithmetic is safe here).

pub mod host_sig;
pub mod rsa;

pub use rsa::{RsaError, RsaHash, RsaPadding, RsaPublicKey};

#[cfg(test)]
mod tests;
