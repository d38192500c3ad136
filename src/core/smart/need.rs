//! What each request needs: the permissions, on which type, in which contexts, and which patient
//! compartment rule applies when a `patient/` scope grants it.

use crate::fhir::{FhirRequest, Interaction};

use super::scope::{Context, Permission as P, Perms};
use super::SmartDenial;

type Params = std::collections::BTreeMap<String, Vec<String>>;

/// Which kind of write a compartment rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    Create,
    Update,
    Patch,
    Delete,
}

/// The patient compartment rule for a request granted by a `patient/` scope.
#[derive(Debug)]
pub(crate) enum Rule<'a> {
    /// Capabilities: no scope needed.
    Public,
    /// Batch/transaction container: entries are authorized one by one by the caller.
    Bundle,
    /// Reads one stored resource.
    ReadInstance { ty: &'a str, id: &'a str },
    /// Changes one stored resource.
    WriteInstance { ty: &'a str, id: &'a str },
    /// Creates a resource (no criteria).
    Create { ty: &'a str },
    /// Searches a type with parameters.
    Search { ty: &'a str, params: &'a Params },
    /// Writes after searching with `params` (conditional create/update/patch/delete).
    ConditionalWrite {
        ty: &'a str,
        params: &'a Params,
        write: Write,
    },
    /// `[kind]/[id]/[ty or *]`.
    CompartmentSearch {
        kind: &'a str,
        id: &'a str,
        ty: Option<&'a str>,
        params: &'a Params,
    },
    /// Reaches every resource of a type with no way to constrain it to a patient.
    TypeWide { ty: &'a str },
    /// Reaches every type.
    SystemWide,
    /// Touches no stored data (`$validate` of a posted resource).
    NoData,
}

/// Contexts whose scopes may grant a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Contexts {
    /// patient, user and system.
    All,
    /// user and system only (requests a patient scope can never constrain).
    UserSystem,
    /// system only (bulk export).
    System,
}

impl Contexts {
    pub(crate) fn allows(self, c: Context) -> bool {
        match self {
            Contexts::All => true,
            Contexts::UserSystem => c != Context::Patient,
            Contexts::System => c == Context::System,
        }
    }
}

/// What a request needs.
#[derive(Debug)]
pub(crate) struct Need<'a> {
    /// Resource type the scope must cover; `None` needs a `*` scope.
    pub ty: Option<&'a str>,
    /// Permissions needed (all of them, possibly from several scopes).
    pub perms: Perms,
    pub contexts: Contexts,
    pub rule: Rule<'a>,
}

fn need<'a>(ty: Option<&'a str>, perms: &[P], contexts: Contexts, rule: Rule<'a>) -> Need<'a> {
    Need {
        ty,
        perms: Perms::of(perms),
        contexts,
        rule,
    }
}

/// The need of one request. A request missing a field the parser always sets is malformed.
pub(crate) fn need_for(req: &FhirRequest) -> Result<Need<'_>, SmartDenial> {
    use Interaction as I;
    let ty = req.resource_type.as_deref();
    let id = req.id.as_deref();
    let typed = || ty.ok_or(SmartDenial::Malformed);
    let with_id = || id.ok_or(SmartDenial::Malformed);
    let params = &req.params;
    let all = Contexts::All;
    Ok(match req.interaction {
        I::Capabilities => need(None, &[], all, Rule::Public),
        I::Batch | I::Transaction => need(None, &[], all, Rule::Bundle),
        I::Read | I::Vread | I::HistoryInstance => {
            let (ty, id) = (typed()?, with_id()?);
            need(Some(ty), &[P::R], all, Rule::ReadInstance { ty, id })
        }
        I::Update | I::Patch | I::Delete => {
            let ty = typed()?;
            let (write, perm) = match req.interaction {
                I::Update => (Write::Update, P::U),
                I::Patch => (Write::Patch, P::U),
                _ => (Write::Delete, P::D),
            };
            if req.conditional {
                let rule = Rule::ConditionalWrite { ty, params, write };
                need(Some(ty), &[perm, P::S], all, rule)
            } else {
                let rule = Rule::WriteInstance { ty, id: with_id()? };
                need(Some(ty), &[perm], all, rule)
            }
        }
        I::Create => {
            let ty = typed()?;
            if req.conditional {
                let rule = Rule::ConditionalWrite {
                    ty,
                    params,
                    write: Write::Create,
                };
                need(Some(ty), &[P::C, P::S], all, rule)
            } else {
                need(Some(ty), &[P::C], all, Rule::Create { ty })
            }
        }
        I::SearchType => {
            let ty = typed()?;
            need(Some(ty), &[P::S], all, Rule::Search { ty, params })
        }
        I::SearchCompartment => {
            let c = req.compartment.as_ref().ok_or(SmartDenial::Malformed)?;
            let rule = Rule::CompartmentSearch {
                kind: &c.kind,
                id: &c.id,
                ty,
                params,
            };
            need(ty, &[P::S], all, rule)
        }
        I::SearchSystem | I::HistorySystem => need(None, &[P::S], all, Rule::SystemWide),
        I::HistoryType => {
            let ty = typed()?;
            need(Some(ty), &[P::S], all, Rule::TypeWide { ty })
        }
        I::Operation => {
            let op = req.operation.as_deref().ok_or(SmartDenial::Malformed)?;
            operation_need(op, ty, id, params)
        }
    })
}

/// Terminology operations and the type they run on at system level.
const TERMINOLOGY_OPS: &[(&str, &str)] = &[
    ("expand", "ValueSet"),
    ("validate-code", "ValueSet"),
    ("lookup", "CodeSystem"),
    ("subsumes", "CodeSystem"),
    ("translate", "ConceptMap"),
    ("closure", "ConceptMap"),
];

/// The operations table (documented on [`super::authorize`]).
fn operation_need<'a>(
    op: &'a str,
    ty: Option<&'a str>,
    id: Option<&'a str>,
    params: &'a Params,
) -> Need<'a> {
    let all = Contexts::All;
    let rs = [P::R, P::S];
    match (op, ty, id) {
        // `Patient/[id]/$everything` is the patient's own record: for a `patient/` scope, the
        // launch patient only (the instance rule of `Patient`); an Encounter's, a member's.
        ("everything", Some(ty), Some(id)) => need(None, &rs, all, Rule::ReadInstance { ty, id }),
        ("everything", Some(ty), None) => need(None, &rs, all, Rule::TypeWide { ty }),
        ("export", _, _) => need(None, &[P::R], Contexts::System, Rule::SystemWide),
        ("validate", None, _) => need(None, &[P::C], all, Rule::NoData),
        ("validate", Some(ty), None) => need(Some(ty), &[P::C], all, Rule::NoData),
        ("validate", Some(ty), Some(id)) => {
            need(Some(ty), &[P::R], all, Rule::ReadInstance { ty, id })
        }
        ("meta", None, _) => need(None, &[P::S], all, Rule::SystemWide),
        ("meta", Some(ty), None) => need(Some(ty), &[P::S], all, Rule::TypeWide { ty }),
        ("meta", Some(ty), Some(id)) => need(Some(ty), &[P::R], all, Rule::ReadInstance { ty, id }),
        ("meta-add" | "meta-delete", Some(ty), Some(id)) => {
            let rule = Rule::WriteInstance { ty, id };
            need(Some(ty), &[P::U], all, rule)
        }
        ("lastn" | "stats", Some(ty @ "Observation"), None) => {
            need(Some(ty), &[P::S], all, Rule::Search { ty, params })
        }
        ("match", Some(ty @ "Patient"), None) => {
            need(Some(ty), &[P::S], all, Rule::TypeWide { ty })
        }
        ("document", Some(ty @ "Composition"), Some(id)) => {
            need(None, &[P::R], all, Rule::ReadInstance { ty, id })
        }
        _ => match terminology_type(op, ty) {
            Some(tt) => match id {
                Some(id) => need(Some(tt), &[P::R], all, Rule::ReadInstance { ty: tt, id }),
                None => need(Some(tt), &[P::R], all, Rule::TypeWide { ty: tt }),
            },
            None => need(
                None,
                &[P::C, P::R, P::U, P::D, P::S],
                Contexts::UserSystem,
                Rule::SystemWide,
            ),
        },
    }
}

fn terminology_type<'a>(op: &str, ty: Option<&'a str>) -> Option<&'a str> {
    let (_, default) = TERMINOLOGY_OPS.iter().find(|(name, _)| *name == op)?;
    match ty {
        None => Some(default),
        Some(t @ ("ValueSet" | "CodeSystem" | "ConceptMap")) => Some(t),
        Some(_) => None,
    }
}
