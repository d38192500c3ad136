//! Lexical rules of FHIR path segments: resource types, ids, operation names, compartments.

/// FHIR R4 (4.0.1) resource types, exact case.
const R4_TYPES: &[&str] = &[
    "Account",
    "ActivityDefinition",
    "AdverseEvent",
    "AllergyIntolerance",
    "Appointment",
    "AppointmentResponse",
    "AuditEvent",
    "Basic",
    "Binary",
    "BiologicallyDerivedProduct",
    "BodyStructure",
    "Bundle",
    "CapabilityStatement",
    "CarePlan",
    "CareTeam",
    "CatalogEntry",
    "ChargeItem",
    "ChargeItemDefinition",
    "Claim",
    "ClaimResponse",
    "ClinicalImpression",
    "CodeSystem",
    "Communication",
    "CommunicationRequest",
    "CompartmentDefinition",
    "Composition",
    "ConceptMap",
    "Condition",
    "Consent",
    "Contract",
    "Coverage",
    "CoverageEligibilityRequest",
    "CoverageEligibilityResponse",
    "DetectedIssue",
    "Device",
    "DeviceDefinition",
    "DeviceMetric",
    "DeviceRequest",
    "DeviceUseStatement",
    "DiagnosticReport",
    "DocumentManifest",
    "DocumentReference",
    "EffectEvidenceSynthesis",
    "Encounter",
    "Endpoint",
    "EnrollmentRequest",
    "EnrollmentResponse",
    "EpisodeOfCare",
    "EventDefinition",
    "Evidence",
    "EvidenceVariable",
    "ExampleScenario",
    "ExplanationOfBenefit",
    "FamilyMemberHistory",
    "Flag",
    "Goal",
    "GraphDefinition",
    "Group",
    "GuidanceResponse",
    "HealthcareService",
    "ImagingStudy",
    "Immunization",
    "ImmunizationEvaluation",
    "ImmunizationRecommendation",
    "ImplementationGuide",
    "InsurancePlan",
    "Invoice",
    "Library",
    "Linkage",
    "List",
    "Location",
    "Measure",
    "MeasureReport",
    "Media",
    "Medication",
    "MedicationAdministration",
    "MedicationDispense",
    "MedicationKnowledge",
    "MedicationRequest",
    "MedicationStatement",
    "MedicinalProduct",
    "MedicinalProductAuthorization",
    "MedicinalProductContraindication",
    "MedicinalProductIndication",
    "MedicinalProductIngredient",
    "MedicinalProductInteraction",
    "MedicinalProductManufactured",
    "MedicinalProductPackaged",
    "MedicinalProductPharmaceutical",
    "MedicinalProductUndesirableEffect",
    "MessageDefinition",
    "MessageHeader",
    "MolecularSequence",
    "NamingSystem",
    "NutritionOrder",
    "Observation",
    "ObservationDefinition",
    "OperationDefinition",
    "OperationOutcome",
    "Organization",
    "OrganizationAffiliation",
    "Parameters",
    "Patient",
    "PaymentNotice",
    "PaymentReconciliation",
    "Person",
    "PlanDefinition",
    "Practitioner",
    "PractitionerRole",
    "Procedure",
    "Provenance",
    "Questionnaire",
    "QuestionnaireResponse",
    "RelatedPerson",
    "RequestGroup",
    "ResearchDefinition",
    "ResearchElementDefinition",
    "ResearchStudy",
    "ResearchSubject",
    "RiskAssessment",
    "RiskEvidenceSynthesis",
    "Schedule",
    "SearchParameter",
    "ServiceRequest",
    "Slot",
    "Specimen",
    "SpecimenDefinition",
    "StructureDefinition",
    "StructureMap",
    "Subscription",
    "Substance",
    "SubstanceNucleicAcid",
    "SubstancePolymer",
    "SubstanceProtein",
    "SubstanceReferenceInformation",
    "SubstanceSourceMaterial",
    "SubstanceSpecification",
    "SupplyDelivery",
    "SupplyRequest",
    "Task",
    "TerminologyCapabilities",
    "TestReport",
    "TestScript",
    "ValueSet",
    "VerificationResult",
    "VisionPrescription",
];

/// Resource types added by R4B (4.3.0) and R5 (5.0.0).
const R4B_R5_TYPES: &[&str] = &[
    "ActorDefinition",
    "AdministrableProductDefinition",
    "ArtifactAssessment",
    "BiologicallyDerivedProductDispense",
    "Citation",
    "ClinicalUseDefinition",
    "ConditionDefinition",
    "DeviceDispense",
    "DeviceUsage",
    "EncounterHistory",
    "EvidenceReport",
    "FormularyItem",
    "GenomicStudy",
    "ImagingSelection",
    "Ingredient",
    "InventoryItem",
    "InventoryReport",
    "ManufacturedItemDefinition",
    "MedicinalProductDefinition",
    "NutritionIntake",
    "NutritionProduct",
    "PackagedProductDefinition",
    "Permission",
    "RegulatedAuthorization",
    "RequestOrchestration",
    "Requirements",
    "SubscriptionStatus",
    "SubscriptionTopic",
    "SubstanceDefinition",
    "TestPlan",
    "Transport",
];

/// Resource types that define a compartment (R4, plus `EpisodeOfCare` from R5).
const COMPARTMENT_TYPES: &[&str] = &[
    "Device",
    "Encounter",
    "EpisodeOfCare",
    "Patient",
    "Practitioner",
    "RelatedPerson",
];

/// Longest id or version id FHIR allows.
pub const MAX_ID_LEN: usize = 64;

/// Whether `s` is a FHIR R4 resource type or an R4B/R5 addition (exact case).
pub fn is_resource_type(s: &str) -> bool {
    R4_TYPES.contains(&s) || R4B_R5_TYPES.contains(&s)
}

/// Every resource type [`is_resource_type`] accepts.
pub fn resource_types() -> impl Iterator<Item = &'static str> {
    R4_TYPES.iter().chain(R4B_R5_TYPES.iter()).copied()
}

/// Whether `s` is a resource type that defines a compartment (`[base]/[s]/[id]/[type]`).
pub fn is_compartment_type(s: &str) -> bool {
    COMPARTMENT_TYPES.contains(&s)
}

/// Whether `s` is a FHIR id (also used for version ids): `[A-Za-z0-9\-\.]{1,64}`.
///
/// `.` and `..` match the grammar but are rejected earlier as dot segments.
pub fn is_valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// Whether `s` (without the `$`) is an acceptable operation name: a letter, then up to 63 letters,
/// digits, `-` or `_`.
pub fn is_valid_operation(s: &str) -> bool {
    let mut bytes = s.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() => {}
        _ => return false,
    }
    s.len() <= MAX_ID_LEN && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
