//! fhirgate: an Envoy/Istio WebAssembly filter that authenticates OpenID Connect bearer tokens and
//! authorizes FHIR requests (SMART-on-FHIR scopes, the patient compartment, CEL consent rules).
//!
//! Three rings, held apart by the build:
//! 1. pure decision logic and the request exchange, in the `fhirgate-core` crate (`src/core`):
//!    inputs in, values out; it has no `proxy_wasm` dependency and clippy refuses the clock there;
//! 2. the host boundary (`host::Host`) and the engine that executes the exchange's effects
//!    (caches, callouts, shared data), also in `fhirgate-core`;
//! 3. the glue (`wasm`, this crate), the only code that imports `proxy_wasm`.
//!
//! Everything of `fhirgate-core` is re-exported here, so `fhirgate::token`, `fhirgate::engine`
//! and the rest are the paths the tests and the `fhirgate` tool use.

pub use fhirgate_core::*;

#[cfg(target_os = "wasi")]
pub mod wasm;
