//! `fhirgate render`: the plugin configuration for a policy, as JSON, as an Envoy
//! `envoy.filters.http.wasm` filter, or as an Istio `WasmPlugin` or `EnvoyFilter` (`istio.rs`).

use serde_json::{json, Value};

use super::policy::Policy;
use crate::rules::{RuleConfig, RuleSet};

/// Output format of `render`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The plugin configuration JSON.
    Plugin,
    /// An entry for Envoy's `http_filters` (YAML).
    Envoy,
    /// An Istio `extensions.istio.io/v1alpha1` `WasmPlugin` (YAML): safe mode.
    WasmPlugin,
    /// An Istio `networking.istio.io/v1alpha3` `EnvoyFilter` (YAML): full mode.
    EnvoyFilter,
}

impl Format {
    /// Parses `plugin`, `envoy`, `wasmplugin` (or `istio`) or `envoyfilter`.
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "plugin" => Some(Format::Plugin),
            "envoy" => Some(Format::Envoy),
            "wasmplugin" | "istio" => Some(Format::WasmPlugin),
            "envoyfilter" => Some(Format::EnvoyFilter),
            _ => None,
        }
    }
}

/// Names and locations used in the Envoy and Istio outputs.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// Filter / plugin name (default `fhirgate`).
    pub name: String,
    /// Istio namespace (default `default`).
    pub namespace: String,
    /// Envoy: path of the `.wasm` file; Istio: its `oci://` or `https://` URL.
    pub wasm: Option<String>,
    /// Istio workload selector labels (default `app: fhir-server`).
    pub selector: Vec<(String, String)>,
    /// Istio: the pinned digest (hex, or `sha256:hex`); required by both Istio formats.
    pub sha256: Option<String>,
    /// Istio: the workload port the filter applies to (default: every inbound port).
    pub port: Option<u16>,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            name: "fhirgate".to_string(),
            namespace: "default".to_string(),
            wasm: None,
            selector: vec![("app".to_string(), "fhir-server".to_string())],
            sha256: None,
            port: None,
        }
    }
}

/// The configuration used when no `--base` is given: one provider with remote keys, to be
/// edited for the real identity provider.
pub fn skeleton() -> Value {
    json!({
        "fhir": {"basePath": "/fhir"},
        "providers": [{
            "name": "main",
            "issuer": "https://idp.example.org",
            "audiences": ["https://fhir.example.org/fhir"],
            "jwks": {"remote": {"cluster": "idp", "authority": "idp.example.org",
                                 "path": "/jwks", "refresh": "300s", "timeout": "1s"}}
        }],
        "smart": {"enforce": true}
    })
}

/// The plugin configuration: `base` (or [`skeleton`]) with the policy's rules appended to its
/// own `rules`. The combined rules must compile (e.g. no duplicate names).
pub fn plugin_config(policy: &Policy, base: Option<&Value>) -> Result<Value, String> {
    let mut config = base.cloned().unwrap_or_else(skeleton);
    let obj = config
        .as_object_mut()
        .ok_or_else(|| "the base configuration must be a JSON object".to_string())?;
    let mut rules: Vec<RuleConfig> = match obj.get("rules") {
        None => Vec::new(),
        Some(r) => serde_json::from_value(r.clone()).map_err(|e| format!("base `rules`: {e}"))?,
    };
    rules.extend(policy.rules.iter().cloned());
    RuleSet::compile(&rules).map_err(|e| e.to_string())?;
    let rules = serde_json::to_value(&rules).map_err(|e| e.to_string())?;
    obj.insert("rules".to_string(), rules);
    Ok(config)
}

/// A YAML double-quoted scalar (JSON string syntax is valid YAML).
pub(super) fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

pub(super) fn indented_json(v: &Value, indent: usize) -> Result<String, String> {
    let text = serde_json::to_string_pretty(v).map_err(|e| e.to_string())?;
    let pad = " ".repeat(indent);
    Ok(text.lines().map(|l| format!("{pad}{l}\n")).collect())
}

/// Renders the policy in the given format.
pub fn render(
    policy: &Policy,
    base: Option<&Value>,
    format: Format,
    opts: &RenderOptions,
) -> Result<String, String> {
    let config = plugin_config(policy, base)?;
    match format {
        Format::Plugin => serde_json::to_string_pretty(&config)
            .map(|s| s + "\n")
            .map_err(|e| e.to_string()),
        Format::Envoy => {
            let wasm = opts.wasm.as_deref().unwrap_or("/etc/envoy/fhirgate.wasm");
            let mut out = String::new();
            out.push_str("# fhirgate for Envoy: an entry of the HTTP connection manager's http_filters, placed\n");
            out.push_str("# before envoy.filters.http.router. Clusters named in the configuration (jwks.remote,\n");
            out.push_str("# introspection) must be defined in the bootstrap.\n");
            out.push_str("- name: envoy.filters.http.wasm\n");
            out.push_str("  typed_config:\n");
            out.push_str(
                "    \"@type\": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm\n",
            );
            out.push_str("    config:\n");
            out.push_str(&format!("      name: {}\n", q(&opts.name)));
            out.push_str(&format!("      root_id: {}\n", q(&opts.name)));
            out.push_str("      vm_config:\n");
            out.push_str(&format!("        vm_id: {}\n", q(&opts.name)));
            out.push_str("        runtime: envoy.wasm.runtime.v8\n");
            out.push_str("        code:\n");
            out.push_str("          local:\n");
            out.push_str(&format!("            filename: {}\n", q(wasm)));
            out.push_str("      configuration:\n");
            out.push_str("        \"@type\": type.googleapis.com/google.protobuf.StringValue\n");
            out.push_str("        value: |\n");
            out.push_str(&indented_json(&config, 10)?);
            Ok(out)
        }
        Format::WasmPlugin => super::istio::wasm_plugin(&config, opts),
        Format::EnvoyFilter => super::istio::envoy_filter(&config, opts),
    }
}
