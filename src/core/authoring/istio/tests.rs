use serde_json::{json, Value};

use super::*;

const SHA: &str = "0d596ac1ff2dc9e6e857667b6f92c89b252255242529e5ea3d3f488fef815e19";

fn config() -> Value {
    json!({"providers": [{"name": "main"}], "rules": [{"name": "r", "expression": "true"}]})
}

fn opts() -> RenderOptions {
    RenderOptions {
        wasm: Some("oci://registry.example.org:5000/fhirgate:0.1.0".into()),
        namespace: "fhir".into(),
        sha256: Some(SHA.into()),
        port: Some(8080),
        ..RenderOptions::default()
    }
}

/// The JSON document that starts on the line after `marker`.
fn embedded(yaml: &str, marker: &str) -> Value {
    let start = yaml.find(marker).unwrap() + marker.len();
    let mut de = serde_json::Deserializer::from_str(&yaml[start..]).into_iter::<Value>();
    de.next().unwrap().unwrap()
}

#[test]
fn digests_are_normalized_or_refused() {
    assert_eq!(normalize_sha256(SHA).unwrap(), SHA);
    assert_eq!(normalize_sha256(&format!("sha256:{SHA}")).unwrap(), SHA);
    assert_eq!(normalize_sha256(&SHA.to_uppercase()).unwrap(), SHA);
    for bad in [
        "",
        "abc",
        &SHA[1..],
        &format!("{SHA}0"),
        &SHA.replace('d', "g"),
        "sha512:00",
    ] {
        assert!(normalize_sha256(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn oci_references_name_a_tag_a_digest_or_nothing() {
    assert_eq!(
        oci_ref("oci://reg.example:5000/team/fhirgate:0.1.0"),
        Some(OciRef::Tag("0.1.0".into()))
    );
    assert_eq!(
        oci_ref("oci://reg.example:5000/fhirgate"),
        Some(OciRef::None)
    );
    assert_eq!(
        oci_ref(&format!("oci://reg.example/fhirgate@sha256:{SHA}")),
        Some(OciRef::Digest(SHA.into()))
    );
    assert_eq!(oci_ref("https://example.org/fhirgate.wasm"), None);
}

#[test]
fn the_layout_index_gives_the_manifest_digest() {
    let index = json!({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": format!("sha256:{SHA}"), "size": 570,
         "annotations": {"org.opencontainers.image.ref.name": "0.1.0"}},
    ]})
    .to_string();
    let tag = |t: &str| OciRef::Tag(t.into());
    assert_eq!(layout_manifest_digest(&index, &tag("0.1.0")).unwrap(), SHA);
    assert_eq!(layout_manifest_digest(&index, &OciRef::None).unwrap(), SHA);
    assert_eq!(
        layout_manifest_digest(&index, &OciRef::Digest(SHA.into())).unwrap(),
        SHA
    );
    let err = layout_manifest_digest(&index, &tag("0.2.0")).unwrap_err();
    assert!(err.contains("0.1.0"), "names the tags it has: {err}");
    assert!(layout_manifest_digest("{}", &tag("0.1.0")).is_err());
    assert!(layout_manifest_digest("[", &tag("0.1.0")).is_err());
    let two = json!({"manifests": [{"digest": format!("sha256:{SHA}")}, {"digest": format!("sha256:{SHA}")}]});
    assert!(
        layout_manifest_digest(&two.to_string(), &OciRef::None).is_err(),
        "two manifests and no tag: ambiguous"
    );
}

#[test]
fn the_wasm_plugin_is_pinned_safe_mode_and_fails_closed() {
    let out = wasm_plugin(&config(), &opts()).unwrap();
    assert!(out.contains("apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\n"));
    assert!(out.contains("SAFE MODE"));
    assert!(out.contains(&format!("  sha256: \"{SHA}\"\n")));
    assert!(out.contains("  url: \"oci://registry.example.org:5000/fhirgate:0.1.0\"\n"));
    assert!(out.contains("  failStrategy: FAIL_CLOSE\n"));
    assert!(out.contains("  phase: AUTHN\n"));
    assert!(out.contains("ports:\n        - number: 8080\n"));
    assert!(out.contains("  selector:\n    matchLabels:\n      \"app\": \"fhir-server\"\n"));
    assert!(!out.contains("allow_on_headers_stop_iteration:"));
    assert_eq!(embedded(&out, "pluginConfig:\n"), config());
    let all_ports = wasm_plugin(
        &config(),
        &RenderOptions {
            port: None,
            ..opts()
        },
    )
    .unwrap();
    assert!(!all_ports.contains("ports:"));
}

#[test]
fn the_envoy_filter_is_pinned_full_mode_and_fails_closed() {
    let out = envoy_filter(&config(), &opts()).unwrap();
    assert!(out.contains("apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\n"));
    assert!(out.contains("FULL MODE"));
    assert!(out.contains("              allow_on_headers_stop_iteration: true\n"));
    assert!(out.contains("              failure_policy: FAIL_RELOAD\n"));
    assert!(out.contains(&format!("                    sha256: \"{SHA}\"\n")));
    assert!(out.contains("      uri: \"oci://registry.example.org:5000/fhirgate:0.1.0\"\n"));
    assert!(out.contains("  workloadSelector:\n    labels:\n      \"app\": \"fhir-server\"\n"));
    assert!(out.contains("          portNumber: 8080\n"));
    assert!(out.contains("        context: SIDECAR_INBOUND\n"));
    assert!(out.contains("              initial_fetch_timeout: 0s\n"));
    // The filter names the extension configuration that patch 1 adds.
    assert_eq!(
        out.matches("name: \"fhir.fhirgate-envoyfilter\"\n").count(),
        2
    );
    assert_eq!(embedded(&out, "value: |\n"), config());
}

#[test]
fn istio_formats_need_a_pin_that_agrees_with_the_url() {
    for render in [wasm_plugin, envoy_filter] {
        let none = render(
            &config(),
            &RenderOptions {
                sha256: None,
                ..opts()
            },
        )
        .unwrap_err();
        assert!(none.contains("--sha256"), "{none}");
        let bad = RenderOptions {
            sha256: Some("12".into()),
            ..opts()
        };
        assert!(render(&config(), &bad).is_err());
        let other = "1".repeat(64);
        let pinned_url = RenderOptions {
            wasm: Some(format!("oci://reg.example/fhirgate@sha256:{other}")),
            ..opts()
        };
        assert!(render(&config(), &pinned_url)
            .unwrap_err()
            .contains("names digest"));
        let same = RenderOptions {
            wasm: Some(format!("oci://reg.example/fhirgate@sha256:{SHA}")),
            ..opts()
        };
        assert!(render(&config(), &same).is_ok());
        let file = RenderOptions {
            wasm: Some("/etc/fhirgate.wasm".into()),
            ..opts()
        };
        assert!(render(&config(), &file).unwrap_err().contains("oci://"));
        let https = RenderOptions {
            wasm: Some("https://example.org/fhirgate.wasm".into()),
            ..opts()
        };
        assert!(render(&config(), &https).is_ok());
    }
}
