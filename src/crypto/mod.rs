//! Verification-only public-key primitives that are faster than jwt-simple's pure-Rust path.
//!
//! Pure logic: no I/O, no clock, nothing secret (every input of a signature verification is
//! public, so variable-time arithmetic is safe here).

pub mod rsa;

pub use rsa::{RsaError, RsaHash, RsaPadding, RsaPublicKey};

#[cfg(test)]
mod tests;
