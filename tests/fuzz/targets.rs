//! The fuzz targets' bodies, one function per parser that sees outside input.
//!
//! Shared by the libFuzzer workspace (`tests/fuzz/fuzz_targets/*.rs` call these) and by the main
//! workspace's `tests/fuzz_corpus.rs`, which replays every checked-in corpus file and regression
//! input through them in `make unit`. Each body asserts invariants, not only "no panic": a
//! failed assertion is a crash to libFuzzer and a failed test to `cargo test`.
//!
//! Fixtures (keys, policies) are built once; nothing here reads a file or the clock.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use fhirgate_core::config::Config;
use fhirgate_core::consent::ConsentPolicy;
use fhirgate_core::fhir::{self, query, FhirRequest};
use fhirgate_core::response::{
    filter_response, LabelMode, ResponseCheck, ResponsePolicy, ResponseVerdict,
};
use fhirgate_core::rules::{Phase, RuleConfig, RuleInput, RuleSet, RuleVerdict};
use fhirgate_core::smart::{Scope, ScopeSet};
use fhirgate_core::token::dpop::{htu, verify_proof, ProofCheck};
use fhirgate_core::token::strict_json::{self, StrictJsonError};
use fhirgate_core::token::{
    classify, extract_credential, introspection, peek, verify_jwt, Algorithm, ClaimNames,
    IntrospectionPolicy, JwtPolicy, KeySet, TokenShape, VerifiedToken,
};
use jwt_simple::prelude::*;
use serde_json::{json, Value};

/// One target's body.
pub type Target = fn(&[u8]);

/// Every target, by name (the directory names under `corpus/` and `regressions/`).
pub const TARGETS: &[(&str, Target)] = &[
    ("authorization", authorization),
    ("jwt", jwt),
    ("jwks", jwks),
    ("introspection", introspection_answer),
    ("fhir_request", fhir_request),
    ("form", form),
    ("bundle", bundle),
    ("response", response),
    ("scope", scope),
    ("config", config),
    ("rules", rules),
    ("dpop", dpop),
    ("htu", htu_uri),
    ("strict_json", strict_json_differential),
];

/// The verification time of the token targets: far in the future, so that any token we accept
/// is unexpired for jwt-simple too (it reads the real clock).
pub const NOW: u64 = 4_000_000_000;
/// The HMAC secret of the `jwt` target (HS256).
pub const HMAC_SECRET: &[u8] = b"fhirgate-fuzz-hmac-secret-32-bytes!!";
/// The private scalar of the `jwt` target's ES256 key (kid `ec-1`).
pub const EC_SCALAR: [u8; 32] = [0x2a; 32];
/// Issuer and audience the `jwt` target accepts.
pub const ISSUER: &str = "https://idp.example";
pub const AUDIENCE: &str = "fhir";

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// The `jwt` target's ES256 key pair.
pub fn ec_key() -> &'static ES256KeyPair {
    static KEY: OnceLock<ES256KeyPair> = OnceLock::new();
    KEY.get_or_init(|| {
        ES256KeyPair::from_bytes(&EC_SCALAR)
            .expect("fixed scalar")
            .with_key_id("ec-1")
    })
}

/// The public JWK of [`ec_key`].
pub fn ec_jwk() -> Value {
    let point = ec_key().public_key().public_key().to_bytes_uncompressed();
    let (x, y) = point[1..].split_at(32);
    json!({
        "kty": "EC", "crv": "P-256", "kid": "ec-1", "alg": "ES256", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
    })
}

fn jwt_policy() -> JwtPolicy {
    JwtPolicy {
        issuer: ISSUER.into(),
        audiences: vec![AUDIENCE.into()],
        algorithms: vec![Algorithm::ES256, Algorithm::HS256],
        accepted_types: vec!["at+jwt".into(), "JWT".into()],
        clock_skew_secs: 60,
        max_lifetime_secs: None,
    }
}

fn jwt_keys() -> &'static KeySet {
    static KEYS: OnceLock<KeySet> = OnceLock::new();
    KEYS.get_or_init(|| {
        let doc = serde_json::to_vec(&json!({ "keys": [ec_jwk()] })).expect("jwks");
        let (keys, _) =
            KeySet::from_jwks(&doc, &[Algorithm::ES256, Algorithm::HS256]).expect("jwks loads");
        keys.with_hmac_secret(HMAC_SECRET, &[Algorithm::HS256])
            .expect("secret")
    })
}

/// Lenient jwt-simple options: signature and well-formedness only (our policy is the stricter
/// one; the differential is "we accept ⇒ jwt-simple accepts the signature").
fn lenient(now_secs: u64) -> VerificationOptions {
    VerificationOptions {
        accept_future: true,
        artificial_time: Some(Duration::from_secs(now_secs)),
        time_tolerance: Some(Duration::from_secs(60)),
        max_token_length: Some(1 << 20),
        max_header_length: Some(1 << 20),
        ..Default::default()
    }
}

/// `Authorization` header values (one per line) → credential; a JWS credential → `peek`.
/// Invariants: an extracted token is a substring of the single value, b64token syntax, and
/// re-extracting `"<Scheme> <token>"` gives the same credential.
pub fn authorization(data: &[u8]) {
    let Some(s) = text(data) else { return };
    let values: Vec<&str> = s.split('\n').collect();
    let values = if s.is_empty() { Vec::new() } else { values };
    let Ok(Some(cred)) = extract_credential(&values) else {
        return;
    };
    assert_eq!(values.len(), 1, "one credential from one value only");
    assert!(values[0].contains(cred.token));
    assert!(cred
        .token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b)));
    let again = format!("{} {}", cred.scheme.as_str(), cred.token);
    assert_eq!(extract_credential(&[again.as_str()]), Ok(Some(cred)));
    if classify(cred.token) == TokenShape::Jws {
        let _ = peek(cred.token);
    }
}

/// A JWS compact token → `verify_jwt` against an ES256 key and an HS256 secret.
/// Invariants: accepted ⇒ `alg` is ES256/HS256 (never `none`), the HS256 tag recomputes with
/// jwt-simple's HMAC, jwt-simple verifies the same token with the same key (differential), the
/// claims are what the payload says, and the verified token survives the shared-cache form.
/// So no unsigned or forged token ever becomes a `VerifiedToken`, the only input to an Allow.
pub fn jwt(data: &[u8]) {
    let Some(token) = text(data) else { return };
    let _ = classify(token);
    let peeked = peek(token);
    let Ok(verified) = verify_jwt(
        token,
        &jwt_policy(),
        jwt_keys(),
        &ClaimNames::default(),
        NOW,
    ) else {
        return;
    };
    let peeked = peeked.expect("a verified token peeks");
    let mut parts = token.split('.');
    let (h, p, sig) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    assert!(parts.next().is_none());
    let signature = URL_SAFE_NO_PAD.decode(sig).expect("canonical signature");
    assert!(!signature.is_empty(), "accepted an unsigned token");
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap();
    let payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap();
    match peeked.alg.as_deref() {
        Some("HS256") => {
            let key = HS256Key::from_bytes(HMAC_SECRET);
            let tag = key.authentication_tag(format!("{h}.{p}").as_bytes());
            assert_eq!(
                tag, signature,
                "HS256 accepted with a tag HMAC does not give"
            );
            let theirs = key.verify_token::<NoCustomClaims>(token, Some(lenient(NOW)));
            assert!(
                theirs.is_ok(),
                "jwt-simple refuses an HS256 token we accept: {theirs:?}"
            );
        }
        Some("ES256") => {
            let theirs = ec_key()
                .public_key()
                .verify_token::<NoCustomClaims>(token, Some(lenient(NOW)));
            assert!(
                theirs.is_ok(),
                "jwt-simple refuses an ES256 token we accept: {theirs:?}"
            );
        }
        other => panic!("accepted a token with alg {other:?}"),
    }
    assert_eq!(
        header.get("alg").and_then(Value::as_str),
        peeked.alg.as_deref()
    );
    assert_eq!(
        Some(&payload),
        Some(&Value::Object(verified.claims().clone()))
    );
    assert_eq!(verified.issuer(), ISSUER);
    let cached = VerifiedToken::from_cache_bytes(&verified.to_cache_bytes());
    assert!(
        cached.as_ref() == Some(&verified),
        "cache form changes the token"
    );
}

/// A JWKS document → `KeySet::from_jwks`. Invariants: loading needs strict JSON (an object, no
/// duplicate members); every key's `kid` is in the document; reloading the document as
/// serde_json re-renders it gives the same key ids.
pub fn jwks(data: &[u8]) {
    let algs = [
        Algorithm::RS256,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
        Algorithm::PS256,
    ];
    let Ok((keys, _warnings)) = KeySet::from_jwks(data, &algs) else {
        return;
    };
    let doc = strict_json::parse(data).expect("a loaded JWKS is strict JSON");
    let listed: Vec<&str> = doc["keys"]
        .as_array()
        .expect("keys array")
        .iter()
        .filter_map(|k| k.get("kid").and_then(Value::as_str))
        .collect();
    for kid in keys.kids() {
        assert!(listed.contains(&kid), "key id {kid:?} not in the document");
    }
    let rendered = serde_json::to_vec(&doc).unwrap();
    let (again, _) = KeySet::from_jwks(&rendered, &algs).expect("re-rendered JWKS loads");
    assert_eq!(again.kids(), keys.kids());
    assert_eq!(again.len(), keys.len());
}

/// An introspection answer → `parse_response`. Invariants: accepted ⇒ strict JSON object with
/// `active: true`, unexpired at `NOW`; the token survives the shared-cache form unchanged
/// (defect found: floats in claims did not, before serde_json's `float_roundtrip`).
pub fn introspection_answer(data: &[u8]) {
    let policy = IntrospectionPolicy {
        issuer: None,
        audiences: vec![AUDIENCE.into()],
        clock_skew_secs: 0,
    };
    let Ok(token) = introspection::parse_response(data, &policy, &ClaimNames::default(), NOW)
    else {
        return;
    };
    let doc = strict_json::parse_object(data)
        .expect("strict JSON")
        .expect("an object");
    assert_eq!(doc.get("active"), Some(&Value::Bool(true)));
    assert!(token.expires_at() > NOW);
    let cached = VerifiedToken::from_cache_bytes(&token.to_cache_bytes());
    assert!(
        cached.as_ref() == Some(&token),
        "cache form changes the token"
    );
}

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];

/// First byte picks the method; the rest is the `:path` (with query). Invariants: an accepted
/// path has no `%`, `\`, `;`, `#`, dot or empty segment before the query and is printable ASCII;
/// its resource type is one FHIR defines; its parameters, rendered back to a query, re-parse equal.
pub fn fhir_request(data: &[u8]) {
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let Some(path) = text(rest) else { return };
    let method = METHODS[usize::from(m) % METHODS.len()];
    for base in ["/fhir", ""] {
        let _ = fhir::body_need(method, path, base);
        let Ok(req) = fhir::parse_request(method, path, base, None, Some(b"")) else {
            continue;
        };
        let before_query = path.split('?').next().unwrap_or_default();
        assert!(path.bytes().all(|b| (0x21..0x7f).contains(&b)));
        for bad in ["%", "\\", ";", "#", "//", "/./", "/../"] {
            assert!(!before_query.contains(bad), "{bad:?} accepted in {path:?}");
        }
        assert!(!before_query.ends_with("/.") && !before_query.ends_with("/.."));
        if let Some(t) = &req.resource_type {
            assert!(fhir::types::is_resource_type(t), "type {t:?}");
        }
        if let Some(id) = &req.id {
            assert!(fhir::types::is_valid_id(id), "id {id:?}");
        }
        check_params_roundtrip(&req);
    }
}

/// Renders search parameters as a form string that `parse_form` reads back to the same map.
pub fn render_params(params: &BTreeMap<String, Vec<String>>) -> String {
    let mut out = Vec::new();
    for (name, values) in params {
        for value in values {
            let escaped = value.replace(',', "\\,");
            out.push(format!(
                "{}={}",
                introspection::form_urlencode(name),
                introspection::form_urlencode(&escaped)
            ));
        }
    }
    out.join("&")
}

fn check_params_roundtrip(req: &FhirRequest) {
    let rendered = render_params(&req.params);
    let mut again = query::Params::new();
    query::parse_form(&rendered, &mut again).expect("rendered parameters parse");
    assert_eq!(again, req.params, "parameters changed through {rendered:?}");
}

/// A form body / query string → `parse_form`. Invariants: names are non-empty and free of
/// control characters; rendered back, the parameters re-parse equal.
pub fn form(data: &[u8]) {
    let Some(s) = text(data) else { return };
    let mut params = query::Params::new();
    if query::parse_form(s, &mut params).is_err() {
        return;
    }
    assert!(!s.contains(';'));
    for (name, values) in &params {
        assert!(!name.is_empty());
        for v in values.iter().chain(std::iter::once(name)) {
            assert!(
                !v.chars().any(|c| c.is_control()),
                "control character in {v:?}"
            );
        }
    }
    let rendered = render_params(&params);
    let mut again = query::Params::new();
    query::parse_form(&rendered, &mut again).expect("rendered parameters parse");
    assert_eq!(again, params, "parameters changed through {rendered:?}");
}

/// A request Bundle → `POST [base]` (`bundle_interaction`) and `bundle_entries`. Invariants:
/// entries are only read from JSON that serde_json reads as a batch/transaction Bundle object;
/// at most `MAX_BUNDLE_ENTRIES`, indexes increasing and inside `entry[]`; each entry's
/// parameters round-trip; no entry is itself a batch/transaction.
pub fn bundle(data: &[u8]) {
    let head = fhir::parse_request(
        "POST",
        "/fhir",
        "/fhir",
        Some("application/fhir+json"),
        Some(data),
    );
    let Ok(entries) = fhir::bundle_entries(data, "/fhir") else {
        return;
    };
    let doc: Value = serde_json::from_slice(data).expect("entries from JSON only");
    let entry = doc.get("entry").and_then(Value::as_array);
    let count = entry.map_or(0, Vec::len);
    assert!(entries.len() <= fhir::MAX_BUNDLE_ENTRIES);
    assert!(entries.len() <= count);
    let mut last = None;
    for (index, req) in &entries {
        assert!(*index < count);
        assert!(last.is_none_or(|l| l < *index));
        last = Some(*index);
        assert!(!matches!(
            req.interaction,
            fhir::Interaction::Batch | fhir::Interaction::Transaction
        ));
        check_params_roundtrip(req);
    }
    if !entries.is_empty() {
        if let Ok(req) = head {
            assert!(matches!(
                req.interaction,
                fhir::Interaction::Batch | fhir::Interaction::Transaction
            ));
        }
    }
}

fn label_policy() -> &'static ConsentPolicy {
    static POLICY: OnceLock<ConsentPolicy> = OnceLock::new();
    POLICY.get_or_init(ConsentPolicy::default)
}

/// A 2xx response body → the response check (patient compartment of `p1`, the default consent
/// labels with nothing granted). Invariants: what is forwarded (the body on Pass, the rewrite
/// otherwise) is JSON that carries no sensitive `meta.security` label anywhere, and checking it
/// again forwards it unchanged (the filter is idempotent).
pub fn response(data: &[u8]) {
    let check = ResponseCheck::for_scopes("patient/*.rs", Some("p1"));
    let consent = label_policy();
    let policy = ResponsePolicy {
        check: &check,
        consent: Some((consent, 0)),
        rules: None,
        mode: LabelMode::Read,
    };
    let checked = filter_response(data, &policy);
    let forwarded: Vec<u8> = match checked.verdict {
        ResponseVerdict::Deny(_) => return,
        ResponseVerdict::Pass => data.to_vec(),
        ResponseVerdict::Rewrite { body, .. } => body,
    };
    let value: Value = serde_json::from_slice(&forwarded).expect("forwarded body is JSON");
    assert_eq!(
        consent.labels_of(&value),
        0,
        "a labelled resource was forwarded"
    );
    let again = filter_response(&forwarded, &policy);
    assert_eq!(
        again.verdict,
        ResponseVerdict::Pass,
        "the filter is not idempotent"
    );
}

/// Scope strings (a token's `scope` claim) → `ScopeSet` / `Scope::parse`. Invariants: a parsed
/// scope re-parses equal from its text, and a canonical rendering of its parts (v2 letters,
/// percent-encoded constraints) parses to the same context, type, permissions and constraints.
pub fn scope(data: &[u8]) {
    let Some(s) = text(data) else { return };
    let set = ScopeSet::parse([s]);
    assert!(set.len() <= s.split_ascii_whitespace().count());
    for sc in set.iter() {
        assert_eq!(Scope::parse(sc.as_str()).as_ref(), Some(sc));
        let mut canonical = format!(
            "{}/{}.{}",
            sc.context().as_str(),
            sc.resource_type(),
            sc.perms().letters()
        );
        for (i, c) in sc.constraints().iter().enumerate() {
            canonical.push(if i == 0 { '?' } else { '&' });
            canonical.push_str(&c.param);
            canonical.push('=');
            canonical.push_str(&percent_encode_all(&c.value));
        }
        let again = Scope::parse(&canonical)
            .unwrap_or_else(|| panic!("canonical form {canonical:?} does not parse"));
        assert_eq!(again.context(), sc.context());
        assert_eq!(again.resource_type(), sc.resource_type());
        assert_eq!(again.perms(), sc.perms());
        assert_eq!(again.constraints(), sc.constraints());
    }
}

fn percent_encode_all(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The configuration JSON → `Config::from_json`. Invariants: accepted ⇒ serde_json reads it
/// too, and its serde_json re-rendering loads to the same base path, providers and rules; a
/// refusal names a key and a reason.
pub fn config(data: &[u8]) {
    match Config::from_json(data) {
        Err(e) => assert!(!e.reason.is_empty(), "a refusal gives a reason"),
        Ok(cfg) => {
            let value: Value = serde_json::from_slice(data).expect("serde_json reads it");
            let again = Config::from_json(&serde_json::to_vec(&value).unwrap())
                .expect("re-rendered configuration loads");
            assert_eq!(again.base_path, cfg.base_path);
            assert_eq!(again.providers.len(), cfg.providers.len());
            assert_eq!(again.rules.len(), cfg.rules.len());
            assert_eq!(again.consent, cfg.consent);
        }
    }
}

fn rule_input() -> &'static RuleInput {
    static INPUT: OnceLock<RuleInput> = OnceLock::new();
    INPUT.get_or_init(|| RuleInput {
        request: json!({
            "method": "GET", "path": "/fhir/Observation?patient=p1", "host": "fhir.example",
            "headers": {"user-agent": "fuzz", "x-purpose": "TREAT"},
            "query": {"patient": ["p1"]}
        }),
        source: json!({"address": "10.0.0.7"}),
        token: json!({
            "kind": "jwt", "issuer": ISSUER, "subject": "u1", "clientId": "app",
            "scopes": ["patient/Observation.rs"], "patient": "p1", "fhirUser": "Practitioner/9",
            "claims": {"acr": "urn:mfa", "consent": ["R"], "n": 1.5, "roles": ["doctor"]}
        }),
        token_cel: None,
        fhir: json!({
            "interaction": "search-type", "resourceType": "Observation", "id": "",
            "versionId": "", "operation": "", "params": {"patient": ["p1"]}, "conditional": false
        }),
    })
}

/// A CEL rule source → compile (parse + lint), then evaluation. The input is the expression, or
/// `match` and expression separated by a newline; a first byte `>` makes it a response rule.
/// Invariants: no stack overflow or hang on any source (nesting is bounded at parse); a rule
/// that compiles evaluates to the same verdict twice, names itself when it denies.
pub fn rules(data: &[u8]) {
    let Some(s) = text(data) else { return };
    let (phase, s) = match s.strip_prefix('>') {
        Some(rest) => (Phase::Response, rest),
        None => (Phase::Request, s),
    };
    let (match_, expression) = match s.split_once('\n') {
        Some((m, e)) => (Some(m.to_owned()), e.to_owned()),
        None => (None, s.to_owned()),
    };
    let cfg = RuleConfig {
        name: "fuzz".into(),
        description: None,
        match_,
        expression,
        message: None,
        effect: Default::default(),
        phase,
        step_up: None,
    };
    let Ok(set) = RuleSet::compile(std::slice::from_ref(&cfg)) else {
        return;
    };
    let input = rule_input();
    match phase {
        Phase::Request => {
            let first = set.evaluate(input);
            if let RuleVerdict::Deny { rule, .. } = &first {
                assert_eq!(rule, "fuzz");
            }
            assert_eq!(
                first,
                set.evaluate(input),
                "evaluation is not deterministic"
            );
        }
        Phase::Response => {
            let resource = json!({
                "resourceType": "Observation", "id": "o1", "subject": {"reference": "Patient/p1"},
                "meta": {"security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSY"}]}
            });
            let a = set.evaluate_response(input, &resource);
            let b = set.evaluate_response(input, &resource);
            assert_eq!(a, b, "evaluation is not deterministic");
        }
    }
}

/// The thumbprint of the `dpop` target's proof key: the ES256 key's JWK.
pub fn dpop_jkt() -> String {
    let jwk = ec_jwk();
    let jwk = jwk.as_object().unwrap();
    fhirgate_core::token::dpop::public_jwk_thumbprint(jwk).unwrap()
}

/// The access token the `dpop` target's proofs are bound to (`ath`).
pub const DPOP_ACCESS_TOKEN: &str = "access-token-for-dpop";
/// The URI the `dpop` target's proofs must name.
pub const DPOP_HTU: &str = "https://fhir.example/fhir/Patient/p1";
/// The verification time of the `dpop` target (ms).
pub const DPOP_NOW_MS: u64 = 1_700_000_000_000;

/// A DPoP proof → `verify_proof`. Invariants: accepted ⇒ the proof is a JWS whose header `alg` is
/// asymmetric (ES256), whose embedded key has the bound thumbprint, whose `htu` normalizes to
/// the request's, and p256 verifies its signature over the signing input with that key.
pub fn dpop(data: &[u8]) {
    let Some(proof) = text(data) else { return };
    let hash: [u8; 32] = fhirgate_core::token::token_hash(DPOP_ACCESS_TOKEN);
    let jkt = dpop_jkt();
    let check = ProofCheck {
        algorithms: &[Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256],
        max_age_ms: 300_000,
        method: "GET",
        htu: Some(DPOP_HTU),
        token_hash: &hash,
        jkt: &jkt,
        now_ms: DPOP_NOW_MS,
    };
    if verify_proof(proof, &check).is_err() {
        return;
    }
    let peeked = peek(proof).expect("a verified proof peeks");
    assert_eq!(peeked.alg.as_deref(), Some("ES256"));
    // jwt-simple reads a header `jwk` as a string, so it cannot parse DPoP proofs: the signature
    // is checked with p256 directly over the exact signing input.
    use p256::ecdsa::signature::Verifier as _;
    let (input, sig) = proof.rsplit_once('.').unwrap();
    let sig = URL_SAFE_NO_PAD.decode(sig).expect("canonical signature");
    let sig = p256::ecdsa::Signature::from_slice(&sig).expect("a P-256 signature");
    let key = p256::ecdsa::SigningKey::from_slice(&EC_SCALAR).unwrap();
    assert!(
        key.verifying_key().verify(input.as_bytes(), &sig).is_ok(),
        "accepted a DPoP proof whose signature p256 refuses"
    );
}

/// A URI → `htu::normalize`. Invariants: normalisation is idempotent, gives an absolute
/// http(s) URI of printable ASCII without query or fragment, and is case-insensitive in the
/// scheme and host.
pub fn htu_uri(data: &[u8]) {
    let Some(s) = text(data) else { return };
    let _ = htu::normalize_base(s);
    let Some(n) = htu::normalize(s) else { return };
    assert_eq!(
        htu::normalize(&n).as_deref(),
        Some(n.as_str()),
        "not idempotent"
    );
    assert!(n.starts_with("http://") || n.starts_with("https://"));
    assert!(!n.contains(['?', '#']));
    assert!(n.bytes().all(|b| (0x21..0x7f).contains(&b)));
    if let Some((scheme, rest)) = s.split_once("://") {
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let upper = format!(
            "{}://{}{}",
            scheme.to_ascii_uppercase(),
            rest[..authority_end].to_ascii_uppercase(),
            &rest[authority_end..]
        );
        assert_eq!(htu::normalize(&upper).as_deref(), Some(n.as_str()));
    }
}

/// Differential of the strict JSON parser (tokens, JWKS, introspection) against serde_json:
/// strict accepts ⇒ serde_json reads the same value and no member name repeats (a counting
/// parse); a duplicate refusal of text serde_json reads ⇒ a name really repeats; a syntax
/// refusal ⇒ serde_json refuses it too.
pub fn strict_json_differential(data: &[u8]) {
    let theirs = serde_json::from_slice::<Value>(data);
    match strict_json::parse(data) {
        Ok(ours) => {
            let theirs = theirs.expect("serde_json reads what strict JSON accepts");
            assert_eq!(ours, theirs, "strict JSON reads a different value");
            assert_eq!(
                count_members(data),
                Some(members_of(&ours)),
                "a duplicate slipped through"
            );
        }
        Err(StrictJsonError::Duplicate) => {
            // The strict parser stops at the first problem: a repeated name before a syntax
            // error is refused as a duplicate (`{"a":9,"a":1,"a"a":2}`, found by fuzzing); both
            // are refusals. When serde_json reads the text, a name must really repeat.
            if let Ok(parsed) = theirs {
                let counted = count_members(data).expect("counts");
                assert!(
                    counted > members_of(&parsed),
                    "refused as duplicate, but every member name is distinct"
                );
            }
        }
        Err(StrictJsonError::Syntax) => {
            assert!(theirs.is_err(), "strict JSON refuses text serde_json reads");
        }
    }
}

/// Total object members in a JSON text, counting repeated names (a small independent walker
/// through serde_json's event stream: `IgnoredAny` visitors that count).
fn count_members(data: &[u8]) -> Option<usize> {
    use serde::de::{Deserializer as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
    struct Counter<'a>(&'a std::cell::Cell<usize>);
    impl<'de> serde::de::DeserializeSeed<'de> for Counter<'_> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Counter<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq.next_element_seed(Counter(self.0))?.is_some() {}
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while map.next_key::<IgnoredAny>()?.is_some() {
                self.0.set(self.0.get() + 1);
                map.next_value_seed(Counter(self.0))?;
            }
            Ok(())
        }
    }
    let cell = std::cell::Cell::new(0);
    let mut de = serde_json::Deserializer::from_slice(data);
    de.deserialize_any(Counter(&cell)).ok()?;
    de.end().ok()?;
    Some(cell.get())
}

/// Total object members of a parsed value (distinct names per object).
fn members_of(v: &Value) -> usize {
    match v {
        Value::Object(m) => m.len() + m.values().map(members_of).sum::<usize>(),
        Value::Array(a) => a.iter().map(members_of).sum(),
        _ => 0,
    }
}
