//! The FHIR request model: which RESTful interaction a request is, on what, with which parameters.
//!
//! Pure logic: no I/O, no clock, no `proxy_wasm`.
//!
//! # Paths
//! `[base]` is the configured base path (`/fhir`; `""` or `/` mean the root). Recognised shapes
//! (HEAD is read like GET):
//!
//! | path | methods | interaction |
//! |---|---|---|
//! | `[base]` | GET / POST | search-system / batch or transaction (from `Bundle.type`) |
//! | `[base]/metadata` | GET | capabilities |
//! | `[base]/_history` | GET | history-system |
//! | `[base]/_search` | GET, POST (form) | search-system |
//! | `[base]/$op` | GET, POST | operation |
//! | `[base]/[type]` | GET / POST | search-type / create |
//! | `[base]/[type]?criteria` | PUT / PATCH / DELETE | conditional update / patch / delete (`conditional`) |
//! | `[base]/[type]/_search` | GET, POST (form) | search-type |
//! | `[base]/[type]/_history` | GET | history-type |
//! | `[base]/[type]/$op` | GET, POST | operation |
//! | `[base]/[type]/[id]` | GET / PUT / PATCH / DELETE | read / update / patch / delete |
//! | `[base]/[type]/[id]/_history` | GET | history-instance |
//! | `[base]/[type]/[id]/_history/[vid]` | GET | vread |
//! | `[base]/[type]/[id]/$op` | GET, POST | operation |
//! | `[base]/[C]/[id]/[type]` or `/*` | GET | search-compartment (`C`: Patient, Encounter, RelatedPerson, Practitioner, Device, EpisodeOfCare) |
//! | `[base]/[C]/[id]/[type]/_search` | GET, POST (form) | search-compartment |
//!
//! # What is rejected
//! - a path outside the base: [`FhirError::NotFhir`] (404);
//! - a known path with a method it does not support: [`FhirError::MethodNotAllowed`] (405), also
//!   PUT/PATCH/DELETE on `[type]` without criteria;
//! - with 400: a `:path` over 8 KiB; any byte outside printable ASCII (controls, space, DEL,
//!   non-ASCII) anywhere; `#`; `\`; `;` anywhere (matrix parameters, and the alternative query
//!   separator some servers honour); any `%` before the `?` (no FHIR segment needs escaping, so
//!   `%2F`, `%2E%2E`, `%5C` and friends never reach routing); `.`/`..` segments; empty segments
//!   (`//`); a trailing `/`, except `[base]/` which means `[base]`; segment characters other than
//!   `[A-Za-z0-9-._$*]`; unknown or wrongly cased resource types; ids or version ids outside
//!   `[A-Za-z0-9\-\.]{1,64}`; misspelt or wrongly cased `_history`, `_search`, `metadata`;
//!   extra segments; in the query: bad `%` escapes, non-UTF-8, decoded control characters and
//!   nameless parameters.
//!
//! # Parameters
//! The query (and the form body of `POST _search`, appended after it) is decoded as
//! `application/x-www-form-urlencoded`; names keep their modifiers; values are split on
//! unescaped commas (see [`query::parse_form`]).

mod body;
mod bundle;
mod error;
mod path;
pub mod query;
pub mod types;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

pub use body::read_write_body;
pub use bundle::MAX_BUNDLE_ENTRIES;
pub use error::FhirError;
pub use path::MAX_PATH_LEN;

/// A FHIR RESTful interaction (names as in the contract's `fhir.interaction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interaction {
    /// `GET [type]/[id]`.
    Read,
    /// `GET [type]/[id]/_history/[vid]`.
    Vread,
    /// `PUT [type]/[id]` or conditional `PUT [type]?criteria`.
    Update,
    /// `PATCH [type]/[id]` or conditional `PATCH [type]?criteria`.
    Patch,
    /// `DELETE [type]/[id]` or conditional `DELETE [type]?criteria`.
    Delete,
    /// `GET [type]/[id]/_history`.
    HistoryInstance,
    /// `GET [type]/_history`.
    HistoryType,
    /// `GET _history`.
    HistorySystem,
    /// `POST [type]`.
    Create,
    /// `GET [type]`, `GET|POST [type]/_search`.
    SearchType,
    /// `GET [base]`, `GET|POST _search`.
    SearchSystem,
    /// `GET [C]/[id]/[type]`, `GET [C]/[id]/*`.
    SearchCompartment,
    /// `GET metadata`.
    Capabilities,
    /// `POST [base]` with a `batch` Bundle.
    Batch,
    /// `POST [base]` with a `transaction` Bundle.
    Transaction,
    /// `$op` at system, type or instance level.
    Operation,
}

impl Interaction {
    /// The contract name (`read`, `history-instance`, `search-type`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Interaction::Read => "read",
            Interaction::Vread => "vread",
            Interaction::Update => "update",
            Interaction::Patch => "patch",
            Interaction::Delete => "delete",
            Interaction::HistoryInstance => "history-instance",
            Interaction::HistoryType => "history-type",
            Interaction::HistorySystem => "history-system",
            Interaction::Create => "create",
            Interaction::SearchType => "search-type",
            Interaction::SearchSystem => "search-system",
            Interaction::SearchCompartment => "search-compartment",
            Interaction::Capabilities => "capabilities",
            Interaction::Batch => "batch",
            Interaction::Transaction => "transaction",
            Interaction::Operation => "operation",
        }
    }
}

/// The compartment of a compartment search (`[base]/Patient/123/Observation`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compartment {
    /// Compartment resource type, e.g. `Patient`.
    pub kind: String,
    /// Id of the compartment's resource.
    pub id: String,
}

/// One FHIR request, as far as the authorization decision needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FhirRequest {
    /// The RESTful interaction.
    pub interaction: Interaction,
    /// Resource type from the URL; `None` at system level, for `[C]/[id]/*` and for bundles.
    pub resource_type: Option<String>,
    /// Resource id from the URL (instance level).
    pub id: Option<String>,
    /// Version id (vread).
    pub version_id: Option<String>,
    /// Operation name without the `$`.
    pub operation: Option<String>,
    /// Compartment of a compartment search.
    pub compartment: Option<Compartment>,
    /// Search parameters (query, plus form body for `POST _search`, plus `If-None-Exist` criteria
    /// for a conditional create).
    pub params: BTreeMap<String, Vec<String>>,
    /// A conditional update/patch/delete (`PUT [type]?criteria`) or create (`If-None-Exist`):
    /// the server searches with `params` before it writes.
    pub conditional: bool,
}

/// Whether the decision needs the request body, decided from the headers alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyNeed {
    /// The body does not matter for the decision.
    None,
    /// `POST .../_search`: the `x-www-form-urlencoded` body holds search parameters.
    FormSearch,
    /// `POST [base]`: a batch or transaction Bundle (JSON) to authorize entry by entry.
    Bundle,
}

/// Decide before reading the body whether the decision needs it (`POST .../_search` form body,
/// `POST [base]` bundle). A request that will not parse gets [`BodyNeed::None`]: `parse_request`
/// rejects it without a body.
pub fn body_need(method: &str, path: &str, base_path: &str) -> BodyNeed {
    match path::route_target(method, path, base_path).map(|r| r.body) {
        Ok(path::Body::FormSearch) => BodyNeed::FormSearch,
        Ok(path::Body::Bundle) => BodyNeed::Bundle,
        _ => BodyNeed::None,
    }
}

/// Parse one request.
///
/// `body` is read only when [`body_need`] asks for it, and then it must be `Some` (use `Some(&[])`
/// for a request without a body; `None` is [`FhirError::BodyRequired`]):
/// - `FormSearch`: an empty body adds nothing; otherwise `content_type` must be
///   `application/x-www-form-urlencoded` (else 415) and its parameters are appended to the query's;
/// - `Bundle`: JSON (`content_type` JSON or absent, else 415); the result is
///   [`Interaction::Batch`] or [`Interaction::Transaction`] from `Bundle.type`, anything else is
///   400. Entries are read by [`bundle_entries`].
pub fn parse_request(
    method: &str,
    path: &str,
    base_path: &str,
    content_type: Option<&str>,
    body: Option<&[u8]>,
) -> Result<FhirRequest, FhirError> {
    let route = path::route_target(method, path, base_path)?;
    let mut req = route.request;
    match route.body {
        path::Body::Ignored => {}
        path::Body::FormSearch => {
            let body = body.ok_or(FhirError::BodyRequired)?;
            path::add_form_body(&mut req.params, content_type, body)?;
        }
        path::Body::Bundle => {
            let body = body.ok_or(FhirError::BodyRequired)?;
            bundle::check_bundle_media_type(content_type)?;
            req.interaction = bundle::bundle_interaction(body)?;
        }
    }
    Ok(req)
}

/// Each entry of a batch/transaction Bundle as its own [`FhirRequest`], with its index in
/// `entry[]`.
///
/// `entry.request.url` is relative to the base (`Patient/1`, `Patient?x=y`), a path from the
/// server root under the base, or absolute (`https://host/fhir/Patient/1`, host not compared);
/// it is parsed by the same rules as a request path. Errors name the entry
/// ([`FhirError::Entry`]): missing `request.method`/`request.url`, a nested batch/transaction (as
/// URL `[base]` or as an entry resource), `POST _search` entries, POST/PUT entries without a
/// resource or whose `resource.resourceType` (or `resource.id`) does not match the URL. More than
/// [`MAX_BUNDLE_ENTRIES`] entries is [`FhirError::TooManyEntries`] (413). `request.ifNoneExist`
/// makes a create conditional.
pub fn bundle_entries(
    bundle_json: &[u8],
    base_path: &str,
) -> Result<Vec<(usize, FhirRequest)>, FhirError> {
    bundle::entries(bundle_json, base_path)
}

impl FhirRequest {
    /// The `fhir` CEL variable: `interaction`, `resourceType`, `id`, `versionId`, `operation`
    /// (empty strings when absent), `compartment` (`{type, id}`, only when present), `params`
    /// (map of lists) and `conditional` (bool).
    pub fn to_cel_value(&self) -> Value {
        let mut map = Map::new();
        map.insert("interaction".into(), json!(self.interaction.as_str()));
        let text = |v: &Option<String>| json!(v.as_deref().unwrap_or_default());
        map.insert("resourceType".into(), text(&self.resource_type));
        map.insert("id".into(), text(&self.id));
        map.insert("versionId".into(), text(&self.version_id));
        map.insert("operation".into(), text(&self.operation));
        if let Some(c) = &self.compartment {
            map.insert("compartment".into(), json!({ "type": c.kind, "id": c.id }));
        }
        map.insert("params".into(), json!(self.params));
        map.insert("conditional".into(), json!(self.conditional));
        Value::Object(map)
    }

    /// Applies an `If-None-Exist` header (or `entry.request.ifNoneExist`) to a create: the create
    /// becomes conditional and the criteria are appended to `params` (the server searches with
    /// them, so authorization must treat them as a search). Criteria may be given as
    /// `a=b&c=d`, `?a=b` or `[type]?a=b`. Other interactions are left unchanged.
    ///
    /// The engine must call this whenever a create carries `If-None-Exist`; otherwise the
    /// criteria are an unchecked search.
    pub fn apply_if_none_exist(&mut self, criteria: &str) -> Result<(), FhirError> {
        if self.interaction != Interaction::Create {
            return Ok(());
        }
        if criteria.bytes().any(|b| !(0x20..=0x7e).contains(&b)) {
            return Err(FhirError::ControlCharInQuery);
        }
        let query = match criteria.split_once('?') {
            Some((_, q)) => q,
            None => criteria,
        };
        query::parse_form(query.trim(), &mut self.params)?;
        self.conditional = true;
        Ok(())
    }
}
