//! Every supported interaction, base path variants, body needs and the CEL value.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;
use serde_json::json;

#[track_caller]
fn assert_req(req: &FhirRequest, interaction: Interaction, ty: Option<&str>, id: Option<&str>) {
    assert_eq!(req.interaction, interaction, "{req:?}");
    assert_eq!(req.resource_type.as_deref(), ty, "{req:?}");
    assert_eq!(req.id.as_deref(), id, "{req:?}");
}

#[test]
fn capabilities() {
    let r = ok("GET", "/fhir/metadata");
    assert_req(&r, Interaction::Capabilities, None, None);
    assert_eq!(
        ok("HEAD", "/fhir/metadata").interaction,
        Interaction::Capabilities
    );
    assert_eq!(err("POST", "/fhir/metadata"), FhirError::MethodNotAllowed);
}

#[test]
fn system_level() {
    assert_req(&ok("GET", "/fhir"), Interaction::SearchSystem, None, None);
    assert_req(&ok("GET", "/fhir/"), Interaction::SearchSystem, None, None);
    let r = ok("GET", "/fhir?_type=Patient,Observation");
    assert_req(&r, Interaction::SearchSystem, None, None);
    assert_eq!(values(&r, "_type"), ["Patient", "Observation"]);
    assert_req(
        &ok("GET", "/fhir/_history"),
        Interaction::HistorySystem,
        None,
        None,
    );
    assert_req(
        &ok("GET", "/fhir/_search?_id=1"),
        Interaction::SearchSystem,
        None,
        None,
    );
    assert_eq!(err("DELETE", "/fhir"), FhirError::MethodNotAllowed);
    assert_eq!(err("POST", "/fhir/_history"), FhirError::MethodNotAllowed);
    assert_eq!(err("PUT", "/fhir/_search"), FhirError::MethodNotAllowed);
}

#[test]
fn system_operation() {
    for method in ["GET", "POST"] {
        let r = ok(method, "/fhir/$export");
        assert_req(&r, Interaction::Operation, None, None);
        assert_eq!(r.operation.as_deref(), Some("export"));
    }
    assert_eq!(err("DELETE", "/fhir/$export"), FhirError::MethodNotAllowed);
}

#[test]
fn type_level() {
    let r = ok("GET", "/fhir/Observation?patient=123");
    assert_req(&r, Interaction::SearchType, Some("Observation"), None);
    assert_eq!(values(&r, "patient"), ["123"]);
    assert!(!r.conditional);
    assert_req(
        &ok("HEAD", "/fhir/Observation"),
        Interaction::SearchType,
        Some("Observation"),
        None,
    );
    assert_req(
        &ok("POST", "/fhir/Observation"),
        Interaction::Create,
        Some("Observation"),
        None,
    );
    assert_req(
        &ok("GET", "/fhir/Observation/_search?code=x"),
        Interaction::SearchType,
        Some("Observation"),
        None,
    );
    assert_req(
        &ok("GET", "/fhir/Observation/_history"),
        Interaction::HistoryType,
        Some("Observation"),
        None,
    );
    let r = ok("POST", "/fhir/Patient/$match");
    assert_req(&r, Interaction::Operation, Some("Patient"), None);
    assert_eq!(r.operation.as_deref(), Some("match"));
}

#[test]
fn conditional_writes() {
    for (method, interaction) in [
        ("PUT", Interaction::Update),
        ("PATCH", Interaction::Patch),
        ("DELETE", Interaction::Delete),
    ] {
        let r = ok(method, "/fhir/Observation?identifier=a|b");
        assert_req(&r, interaction, Some("Observation"), None);
        assert!(r.conditional, "{method}");
        assert_eq!(values(&r, "identifier"), ["a|b"]);
        // Without criteria there is nothing to address: 405.
        assert_eq!(
            err(method, "/fhir/Observation"),
            FhirError::MethodNotAllowed
        );
        assert_eq!(
            err(method, "/fhir/Observation?"),
            FhirError::MethodNotAllowed
        );
        assert_eq!(
            err(method, "/fhir/Observation?&&"),
            FhirError::MethodNotAllowed
        );
    }
}

#[test]
fn instance_level() {
    assert_req(
        &ok("GET", "/fhir/Patient/123"),
        Interaction::Read,
        Some("Patient"),
        Some("123"),
    );
    assert_req(
        &ok("HEAD", "/fhir/Patient/123"),
        Interaction::Read,
        Some("Patient"),
        Some("123"),
    );
    assert_req(
        &ok("PUT", "/fhir/Patient/123"),
        Interaction::Update,
        Some("Patient"),
        Some("123"),
    );
    assert_req(
        &ok("PATCH", "/fhir/Patient/123"),
        Interaction::Patch,
        Some("Patient"),
        Some("123"),
    );
    assert_req(
        &ok("DELETE", "/fhir/Patient/123"),
        Interaction::Delete,
        Some("Patient"),
        Some("123"),
    );
    assert!(!ok("PUT", "/fhir/Patient/123").conditional);
    assert_eq!(
        err("POST", "/fhir/Patient/123"),
        FhirError::MethodNotAllowed
    );
    assert_eq!(
        err("OPTIONS", "/fhir/Patient/123"),
        FhirError::MethodNotAllowed
    );
    assert_eq!(err("get", "/fhir/Patient/123"), FhirError::MethodNotAllowed);
    let r = ok("GET", "/fhir/Patient/a-B.9?_format=json");
    assert_req(&r, Interaction::Read, Some("Patient"), Some("a-B.9"));
    assert_eq!(values(&r, "_format"), ["json"]);
}

#[test]
fn history_and_vread() {
    assert_req(
        &ok("GET", "/fhir/Patient/123/_history"),
        Interaction::HistoryInstance,
        Some("Patient"),
        Some("123"),
    );
    let r = ok("GET", "/fhir/Patient/123/_history/7");
    assert_req(&r, Interaction::Vread, Some("Patient"), Some("123"));
    assert_eq!(r.version_id.as_deref(), Some("7"));
    assert_eq!(
        err("DELETE", "/fhir/Patient/123/_history"),
        FhirError::MethodNotAllowed
    );
    assert_eq!(
        err("PUT", "/fhir/Patient/123/_history/7"),
        FhirError::MethodNotAllowed
    );
    assert_eq!(
        err("POST", "/fhir/Patient/_history"),
        FhirError::MethodNotAllowed
    );
}

#[test]
fn instance_operation() {
    for method in ["GET", "POST"] {
        let r = ok(method, "/fhir/Patient/123/$everything");
        assert_req(&r, Interaction::Operation, Some("Patient"), Some("123"));
        assert_eq!(r.operation.as_deref(), Some("everything"));
    }
    let r = ok("GET", "/fhir/ValueSet/$validate-code?code=x");
    assert_eq!(r.operation.as_deref(), Some("validate-code"));
    assert_eq!(
        err("PUT", "/fhir/Patient/123/$everything"),
        FhirError::MethodNotAllowed
    );
}

#[test]
fn compartment_search() {
    let r = ok("GET", "/fhir/Patient/123/Observation?code=x");
    assert_req(
        &r,
        Interaction::SearchCompartment,
        Some("Observation"),
        None,
    );
    let c = r.compartment.clone().unwrap();
    assert_eq!((c.kind.as_str(), c.id.as_str()), ("Patient", "123"));
    assert_eq!(values(&r, "code"), ["x"]);

    let r = ok("GET", "/fhir/Patient/123/*");
    assert_req(&r, Interaction::SearchCompartment, None, None);
    assert_eq!(r.compartment.unwrap().id, "123");

    let r = ok("GET", "/fhir/Encounter/e1/Observation");
    assert_eq!(r.compartment.unwrap().kind, "Encounter");
    for kind in ["Practitioner", "RelatedPerson", "Device", "EpisodeOfCare"] {
        let r = ok("GET", &format!("/fhir/{kind}/x/Observation"));
        assert_eq!(r.interaction, Interaction::SearchCompartment);
    }

    let r = ok("GET", "/fhir/Patient/123/Observation/_search?code=x");
    assert_req(
        &r,
        Interaction::SearchCompartment,
        Some("Observation"),
        None,
    );

    // Not a compartment type, unknown target type, wrong method.
    assert_eq!(
        err("GET", "/fhir/Observation/1/Patient"),
        FhirError::UnsupportedPath
    );
    assert_eq!(
        err("GET", "/fhir/Patient/123/observation"),
        FhirError::UnknownResourceType
    );
    assert_eq!(
        err("POST", "/fhir/Patient/123/Observation"),
        FhirError::MethodNotAllowed
    );
    assert_eq!(
        err("GET", "/fhir/Patient/123/*/_search"),
        FhirError::UnsupportedPath
    );
}

#[test]
fn r4b_and_r5_types_are_known() {
    assert_eq!(
        ok("GET", "/fhir/SubscriptionTopic").interaction,
        Interaction::SearchType
    );
    assert_eq!(
        ok("GET", "/fhir/DeviceUsage/1").interaction,
        Interaction::Read
    );
    assert_eq!(ok("GET", "/fhir/Citation/1").interaction, Interaction::Read);
}

#[test]
fn base_path_variants() {
    for base in ["", "/"] {
        let r = parse_request("GET", "/Patient/1", base, None, None).unwrap();
        assert_req(&r, Interaction::Read, Some("Patient"), Some("1"));
        let r = parse_request("GET", "/", base, None, None).unwrap();
        assert_eq!(r.interaction, Interaction::SearchSystem);
        let r = parse_request("GET", "/metadata", base, None, None).unwrap();
        assert_eq!(r.interaction, Interaction::Capabilities);
    }
    for base in ["/fhir/", "fhir", "/fhir"] {
        let r = parse_request("GET", "/fhir/Patient/1", base, None, None).unwrap();
        assert_eq!(r.interaction, Interaction::Read, "{base}");
    }
    let r = parse_request("GET", "/api/r4/Patient/1", "/api/r4", None, None).unwrap();
    assert_eq!(r.interaction, Interaction::Read);
}

#[test]
fn outside_base_is_not_fhir() {
    for path in [
        "/fhirx/Patient/1",
        "/other",
        "/FHIR/Patient/1",
        "/api/fhir/Patient/1",
        "/",
        "//fhir/Patient/1",
        "/%66hir/Patient/1",
        "/public/../fhir/Patient/1",
    ] {
        let e = err("GET", path);
        assert_eq!(e, FhirError::NotFhir, "{path}");
        assert_eq!(e.status(), 404);
        assert_eq!(e.code(), "not_fhir");
    }
}

#[test]
fn body_need_decisions() {
    assert_eq!(body_need("POST", "/fhir", BASE), BodyNeed::Bundle);
    assert_eq!(body_need("POST", "/fhir/", BASE), BodyNeed::Bundle);
    assert_eq!(
        body_need("POST", "/fhir?_format=json", BASE),
        BodyNeed::Bundle
    );
    assert_eq!(
        body_need("POST", "/fhir/_search", BASE),
        BodyNeed::FormSearch
    );
    assert_eq!(
        body_need("POST", "/fhir/Observation/_search", BASE),
        BodyNeed::FormSearch
    );
    assert_eq!(
        body_need("POST", "/fhir/Patient/1/Observation/_search", BASE),
        BodyNeed::FormSearch
    );
    assert_eq!(
        body_need("GET", "/fhir/Observation/_search", BASE),
        BodyNeed::None
    );
    assert_eq!(body_need("GET", "/fhir", BASE), BodyNeed::None);
    assert_eq!(body_need("HEAD", "/fhir", BASE), BodyNeed::None);
    assert_eq!(body_need("POST", "/fhir/Observation", BASE), BodyNeed::None);
    assert_eq!(
        body_need("PUT", "/fhir/Observation/1", BASE),
        BodyNeed::None
    );
    assert_eq!(body_need("POST", "/fhir/../x", BASE), BodyNeed::None);
    assert_eq!(body_need("POST", "/other", BASE), BodyNeed::None);
    assert_eq!(body_need("POST", "/", ""), BodyNeed::Bundle);
}

#[test]
fn cel_value_full() {
    let r = ok(
        "GET",
        "/fhir/Patient/123/Observation?category=a,b&subject:Patient=123",
    );
    assert_eq!(
        r.to_cel_value(),
        json!({
            "interaction": "search-compartment",
            "resourceType": "Observation",
            "id": "",
            "versionId": "",
            "operation": "",
            "compartment": {"type": "Patient", "id": "123"},
            "params": {"category": ["a", "b"], "subject:Patient": ["123"]},
            "conditional": false,
        })
    );
}

#[test]
fn cel_value_without_compartment() {
    let v = ok("GET", "/fhir/Patient/1/_history/2").to_cel_value();
    assert_eq!(v["interaction"], "vread");
    assert_eq!(v["resourceType"], "Patient");
    assert_eq!(v["id"], "1");
    assert_eq!(v["versionId"], "2");
    assert!(v.get("compartment").is_none());
    assert_eq!(v["params"], json!({}));
    let v = ok("POST", "/fhir/Patient/1/$everything").to_cel_value();
    assert_eq!(v["operation"], "everything");
    let v = ok("DELETE", "/fhir/Observation?code=x").to_cel_value();
    assert_eq!(v["conditional"], true);
}

#[test]
fn interaction_names() {
    use Interaction as I;
    let all = [
        (I::Read, "read"),
        (I::Vread, "vread"),
        (I::Update, "update"),
        (I::Patch, "patch"),
        (I::Delete, "delete"),
        (I::HistoryInstance, "history-instance"),
        (I::HistoryType, "history-type"),
        (I::HistorySystem, "history-system"),
        (I::Create, "create"),
        (I::SearchType, "search-type"),
        (I::SearchSystem, "search-system"),
        (I::SearchCompartment, "search-compartment"),
        (I::Capabilities, "capabilities"),
        (I::Batch, "batch"),
        (I::Transaction, "transaction"),
        (I::Operation, "operation"),
    ];
    for (i, name) in all {
        assert_eq!(i.as_str(), name);
    }
}

#[test]
fn if_none_exist_makes_create_conditional() {
    let mut r = ok("POST", "/fhir/Observation");
    r.apply_if_none_exist("identifier=sys|1&patient=Patient/9")
        .unwrap();
    assert!(r.conditional);
    assert_eq!(values(&r, "identifier"), ["sys|1"]);
    assert_eq!(values(&r, "patient"), ["Patient/9"]);

    let mut r = ok("POST", "/fhir/Observation");
    r.apply_if_none_exist("Observation?code=x").unwrap();
    assert_eq!(values(&r, "code"), ["x"]);
    let mut r = ok("POST", "/fhir/Observation");
    r.apply_if_none_exist("?code=y").unwrap();
    assert_eq!(values(&r, "code"), ["y"]);

    let mut r = ok("POST", "/fhir/Observation");
    assert_eq!(
        r.apply_if_none_exist("code=%zz"),
        Err(FhirError::BadPercentEncoding)
    );
    assert_eq!(
        r.apply_if_none_exist("code=\u{1}"),
        Err(FhirError::ControlCharInQuery)
    );

    // Not a create: unchanged.
    let mut r = ok("GET", "/fhir/Observation/1");
    r.apply_if_none_exist("code=x").unwrap();
    assert!(!r.conditional);
    assert!(r.params.is_empty());
}
