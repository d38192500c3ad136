//! `fhirgate render --format wasmplugin|envoyfilter`: the two Istio manifests, both pinned to an
//! image digest and failing closed.
//!
//! - The `WasmPlugin` is all Istio's own API can express: Envoy's default for the Wasm filter,
//!   without `allow_on_headers_stop_iteration`, so fhirgate runs in its safe mode.
//! - The `EnvoyFilter` adds the same module through ECDS (an `EXTENSION_CONFIG` patch that
//!   istio-agent resolves like a WasmPlugin's: it pulls the image, checks `sha256`, and hands Envoy
//!   a local file) with `allow_on_headers_stop_iteration: true`, and inserts it before the router
//!   of the inbound HTTP chains: full mode.
//!
//! What `sha256` means depends on the URL (istio `pkg/wasm/cache.go`): for `oci://` it is compared
//! with the digest of the image manifest, for `http(s)://` with the digest of the module itself.

use serde_json::Value;

use super::render::{indented_json, q, RenderOptions};

/// The image used when no `--image` is given.
pub const DEFAULT_IMAGE: &str = "oci://registry.example.org/fhirgate:0.1.0";

const WASM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
const RBAC_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC";

/// A digest as Istio's `sha256` field wants it: 64 lowercase hex digits, from `hex` or
/// `sha256:hex` (either case).
pub fn normalize_sha256(text: &str) -> Result<String, String> {
    let hex = text
        .strip_prefix("sha256:")
        .unwrap_or(text)
        .to_ascii_lowercase();
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hex)
    } else {
        Err(format!(
            "sha256 {text:?}: expected 64 hex digits (optionally after `sha256:`)"
        ))
    }
}

/// The tag or digest an `oci://` reference names: `Tag("0.1.0")`, `Digest(hex)`, or `None`
/// (no tag: `latest` for a registry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OciRef {
    /// `oci://host/repo:tag`.
    Tag(String),
    /// `oci://host/repo@sha256:<hex>`.
    Digest(String),
    /// `oci://host/repo`.
    None,
}

/// Splits the tag or digest off an `oci://` URL (`None` for other schemes).
pub fn oci_ref(url: &str) -> Option<OciRef> {
    let rest = url.strip_prefix("oci://")?;
    if let Some((_, digest)) = rest.rsplit_once('@') {
        return Some(OciRef::Digest(
            digest.strip_prefix("sha256:").unwrap_or(digest).to_string(),
        ));
    }
    let last = rest.rsplit('/').next().unwrap_or(rest);
    // `host:port/repo` has its colon before the last `/`; a tag's colon is after it.
    Some(match last.rsplit_once(':') {
        Some((_, tag)) if rest.contains('/') => OciRef::Tag(tag.to_string()),
        _ => OciRef::None,
    })
}

/// The manifest digest (hex) that an OCI image layout's `index.json` names for `reference`:
/// the entry whose `org.opencontainers.image.ref.name` is the tag, the entry with that digest,
/// or the only entry when the URL names neither.
pub fn layout_manifest_digest(index_json: &str, reference: &OciRef) -> Result<String, String> {
    let index: Value = serde_json::from_str(index_json)
        .map_err(|e| format!("index.json is not valid JSON: {e}"))?;
    let manifests = index
        .get("manifests")
        .and_then(Value::as_array)
        .ok_or("index.json has no `manifests` list")?;
    let entries: Vec<(Option<&str>, &str)> = manifests
        .iter()
        .filter_map(|m| {
            let digest = m.get("digest")?.as_str()?;
            let name = m
                .get("annotations")
                .and_then(|a| a.get("org.opencontainers.image.ref.name"))
                .and_then(Value::as_str);
            Some((name, digest))
        })
        .collect();
    let chosen = match reference {
        OciRef::Tag(tag) => entries.iter().find(|(n, _)| *n == Some(tag.as_str())),
        OciRef::Digest(hex) => entries
            .iter()
            .find(|(_, d)| d.strip_prefix("sha256:") == Some(hex.as_str())),
        OciRef::None => match entries.as_slice() {
            [one] => Some(one),
            _ => None,
        },
    };
    let Some((_, digest)) = chosen else {
        let tags: Vec<&str> = entries.iter().filter_map(|(n, _)| *n).collect();
        return Err(format!(
            "the OCI layout has no manifest for {reference:?} (tags: {})",
            tags.join(", ")
        ));
    };
    normalize_sha256(digest)
}

/// The image URL and pinned digest for an Istio format, checked together.
fn image_and_pin(opts: &RenderOptions) -> Result<(&str, String), String> {
    let url = opts.wasm.as_deref().unwrap_or(DEFAULT_IMAGE);
    if !(url.starts_with("oci://") || url.starts_with("https://") || url.starts_with("http://")) {
        return Err(format!(
            "image {url:?}: Istio loads oci://, https:// or http:// URLs"
        ));
    }
    let sha = opts.sha256.as_deref().ok_or(
        "an Istio manifest pins its module: give --sha256 (the image manifest's digest for \
         oci://, printed by `make oci`; the module's for https://) or --oci-layout target/oci",
    )?;
    let sha = normalize_sha256(sha)?;
    if let Some(OciRef::Digest(d)) = oci_ref(url) {
        if d != sha {
            return Err(format!(
                "image {url:?} names digest {d}, but sha256 is {sha}"
            ));
        }
    }
    Ok((url, sha))
}

fn push_selector(out: &mut String, key: &str, indent: &str, opts: &RenderOptions) {
    if opts.selector.is_empty() {
        return;
    }
    out.push_str(&format!("{indent}{key}:\n"));
    for (k, v) in &opts.selector {
        out.push_str(&format!("{indent}  {}: {}\n", q(k), q(v)));
    }
}

fn push_metadata(out: &mut String, opts: &RenderOptions) {
    out.push_str("metadata:\n");
    out.push_str(&format!("  name: {}\n", q(&opts.name)));
    out.push_str(&format!("  namespace: {}\n", q(&opts.namespace)));
}

/// An Istio `extensions.istio.io/v1alpha1` `WasmPlugin` (safe mode).
pub fn wasm_plugin(config: &Value, opts: &RenderOptions) -> Result<String, String> {
    let (url, sha) = image_and_pin(opts)?;
    let mut out = String::new();
    out.push_str(concat!(
        "# fhirgate as an Istio WasmPlugin: SAFE MODE (README, \"Envoy modes\").\n",
        "# A WasmPlugin cannot set Envoy's allow_on_headers_stop_iteration, so Envoy will not hand\n",
        "# a request body to a filter that holds the headers. fhirgate detects this and runs in safe\n",
        "# mode: a request decided on its headers is held until the decision; a request whose\n",
        "# decision needs its body (POST/PUT/PATCH) has its headers, never its body, sent to the\n",
        "# FHIR server before the decision, and a denial resets it upstream; a checked response's\n",
        "# headers go out at once and its body is held until checked, an answer that must be\n",
        "# refused is cut off. To hold every denied request away from the FHIR server, apply the\n",
        "# EnvoyFilter from `fhirgate render --format envoyfilter` (full mode) instead, not both.\n",
        "# sha256 pins the module: for oci:// Istio compares it with the image manifest's digest\n",
        "# (`make oci` prints it; `--oci-layout target/oci` reads it), for https:// with the\n",
        "# module's. FAIL_CLOSE: a module that cannot be pulled, does not match sha256 or fails to\n",
        "# start denies every request (FAIL_RELOAD, Istio 1.27 and later, also replaces a VM that\n",
        "# trapped). pluginConfig is fhirgate's configuration (README, \"Configuration reference\").\n",
        "apiVersion: extensions.istio.io/v1alpha1\n",
        "kind: WasmPlugin\n",
    ));
    push_metadata(&mut out, opts);
    out.push_str("spec:\n");
    if !opts.selector.is_empty() {
        out.push_str("  selector:\n");
        push_selector(&mut out, "matchLabels", "    ", opts);
    }
    out.push_str(&format!("  url: {}\n", q(url)));
    out.push_str(&format!("  sha256: {}\n", q(&sha)));
    out.push_str("  imagePullPolicy: IfNotPresent\n");
    out.push_str("  # Before Istio's own authentication and authorization filters.\n");
    out.push_str("  phase: AUTHN\n");
    out.push_str("  failStrategy: FAIL_CLOSE\n");
    out.push_str("  match:\n    - mode: SERVER\n");
    if let Some(port) = opts.port {
        out.push_str(&format!("      ports:\n        - number: {port}\n"));
    }
    out.push_str("  pluginConfig:\n");
    out.push_str(&indented_json(config, 4)?);
    Ok(out)
}

/// An Istio `networking.istio.io/v1alpha3` `EnvoyFilter` (full mode).
pub fn envoy_filter(config: &Value, opts: &RenderOptions) -> Result<String, String> {
    let (url, sha) = image_and_pin(opts)?;
    let ecds = format!("{}.{}-envoyfilter", opts.namespace, opts.name);
    let mut out = String::new();
    out.push_str(concat!(
        "# fhirgate as an Istio EnvoyFilter: FULL MODE (README, \"Envoy modes\").\n",
        "# allow_on_headers_stop_iteration: true lets fhirgate hold a request's headers until its\n",
        "# decision, also when the decision needs the body, so a denied request never reaches the\n",
        "# FHIR server, not even its headers; response headers are held until the body is checked.\n",
        "# Needs a sidecar on Envoy 1.35 or later. Apply this or the WasmPlugin, not both.\n",
        "# Patch 1 is the filter's configuration, served over ECDS: istio-agent pulls the image,\n",
        "# compares sha256 with the image manifest's digest (oci://; the module's for https://) and\n",
        "# gives Envoy the local file; a failed pull or a wrong sha256 becomes a deny-all RBAC filter.\n",
        "# Patch 2 puts the filter into each inbound HTTP chain, before the router; the listener\n",
        "# waits for its configuration (initial_fetch_timeout 0s) instead of serving without it.\n",
        "apiVersion: networking.istio.io/v1alpha3\n",
        "kind: EnvoyFilter\n",
    ));
    push_metadata(&mut out, opts);
    out.push_str("spec:\n");
    if !opts.selector.is_empty() {
        out.push_str("  workloadSelector:\n");
        push_selector(&mut out, "labels", "    ", opts);
    }
    out.push_str("  configPatches:\n");
    out.push_str("    - applyTo: EXTENSION_CONFIG\n");
    out.push_str("      patch:\n");
    out.push_str("        operation: ADD\n");
    out.push_str("        value:\n");
    out.push_str(&format!("          name: {}\n", q(&ecds)));
    out.push_str("          typed_config:\n");
    out.push_str(&format!("            \"@type\": {WASM_TYPE}\n"));
    out.push_str("            config:\n");
    out.push_str(&format!("              name: {}\n", q(&opts.name)));
    out.push_str(&format!("              root_id: {}\n", q(&opts.name)));
    out.push_str("              vm_config:\n");
    out.push_str(&format!("                vm_id: {}\n", q(&opts.name)));
    out.push_str("                runtime: envoy.wasm.runtime.v8\n");
    out.push_str("                code:\n");
    out.push_str("                  remote:\n");
    out.push_str("                    http_uri:\n");
    out.push_str(&format!("                      uri: {}\n", q(url)));
    out.push_str(
        "                      # istio-agent fetches the image; Envoy never uses this cluster.\n",
    );
    out.push_str("                      cluster: \"_\"\n");
    out.push_str("                      timeout: 30s\n");
    out.push_str(&format!("                    sha256: {}\n", q(&sha)));
    out.push_str("              configuration:\n");
    out.push_str("                \"@type\": type.googleapis.com/google.protobuf.StringValue\n");
    out.push_str("                value: |\n");
    out.push_str(&indented_json(config, 18)?);
    out.push_str(
        "              # A VM that traps is replaced (with backoff); requests meanwhile get 503.\n",
    );
    out.push_str("              failure_policy: FAIL_RELOAD\n");
    out.push_str("              allow_on_headers_stop_iteration: true\n");
    out.push_str("    - applyTo: HTTP_FILTER\n");
    out.push_str("      match:\n");
    out.push_str("        context: SIDECAR_INBOUND\n");
    out.push_str("        listener:\n");
    if let Some(port) = opts.port {
        out.push_str(&format!("          portNumber: {port}\n"));
    }
    out.push_str("          filterChain:\n");
    out.push_str("            filter:\n");
    out.push_str("              name: envoy.filters.network.http_connection_manager\n");
    out.push_str("              subFilter:\n");
    out.push_str("                name: envoy.filters.http.router\n");
    out.push_str("      patch:\n");
    out.push_str("        operation: INSERT_BEFORE\n");
    out.push_str("        value:\n");
    out.push_str(&format!("          name: {}\n", q(&ecds)));
    out.push_str("          config_discovery:\n");
    out.push_str("            config_source:\n");
    out.push_str("              ads: {}\n");
    out.push_str("              initial_fetch_timeout: 0s\n");
    out.push_str("            type_urls:\n");
    out.push_str(&format!("              - {WASM_TYPE}\n"));
    out.push_str(&format!("              - {RBAC_TYPE}\n"));
    Ok(out)
}

#[cfg(test)]
mod tests;
