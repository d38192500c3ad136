//! fhirgate: an Envoy/Istio WebAssembly filter that authenticates OpenID Connect bearer tokens and
//! authorizes FHIR requests (SMART-on-FHIR scopes, the patient compartment, CEL consent rules).
//!
//! The crate has three rings:
//! 1. pure decision logic (`config`, `token`, `fhir`, `smart`, `rules`, `decision`, `outcome`, `forward`, `audit`): inputs in,
//!    values out, no I/O and no `proxy_wasm`;
//! 2. the host boundary (`host::Host`) and the request state machine that uses it (`engine`);
//! 3. the glue (`wasm`), the only module that imports `proxy_wasm`.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod audit;
/// The policy tool's library (`fhirgate check/test/eval/render`); native builds only.
#[cfg(not(target_arch = "wasm32"))]
pub mod authoring;
pub mod config;
pub mod consent;
pub mod crypto;
pub mod decision;
pub mod engine;
pub mod exchange;
pub mod explain;
pub mod fhir;
pub mod forward;
pub mod host;
pub mod metrics;
pub mod outcome;
pub mod percent;
pub mod response;
pub mod rules;
pub mod smart;
pub mod tape;
pub mod token;
