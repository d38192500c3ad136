//! `fhirgate`: the policy author's tool (native only).
//!
//! ```text
//! fhirgate check <policy.json|config.json>...   compile and lint rules
//! fhirgate test [dir]                            run every *.cases.json against its policy
//! fhirgate eval --policy p.json --token claims.json --request 'GET /fhir/Observation?patient=1'
//! fhirgate render --policy p.json [--base config.json] --format plugin|envoy|wasmplugin|envoyfilter
//! ```
//!
//! Run from the repository with `cargo run --bin fhirgate -- test policies`.

#[cfg(not(target_arch = "wasm32"))]
#[path = "fhirgate/cli.rs"]
mod cli;

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = cli::run(&args, &mut std::io::stdout(), &mut std::io::stderr());
    std::process::exit(code);
}

#[cfg(target_arch = "wasm32")]
fn main() {
    // The tool reads files and prints reports; it has no use inside a Wasm VM.
}
