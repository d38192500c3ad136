//! How the proxy treats a headers callback that holds: the two Envoy modes.
//!
//! proxy-wasm has one way to hold a request or a response: the headers callback answers
//! "pause". Envoy turns that into `StopIteration` when the Wasm filter's configuration sets
//! `allow_on_headers_stop_iteration: true` (Envoy ≥ 1.35; **full mode**): the body still flows to
//! the filter while the headers wait, so a request can be decided on its body before anything
//! reaches the upstream, and a response checked before its status is sent. Without it
//! (Envoy's default, and all an Istio `WasmPlugin` can express; **safe mode**) a paused headers
//! callback stops everything, the body included, until the filter resumes: a filter that waits
//! there for a body waits forever.
//!
//! The filter cannot read its own Envoy configuration, so it learns the mode from what Envoy
//! does: a body callback that arrives while the headers are held proves full mode; a hold that
//! saw no body for [`PROBE_AFTER_MS`] is released, and a body that then arrives at once (within
//! [`PROBE_SETTLE_MS`]: Envoy had it buffered all along) proves safe mode. Until then the mode is
//! [`HoldMode::Unknown`] and each hold is probed that way, so no request waits longer than the
//! probe for a body that Envoy will not deliver.

/// How long a hold that waits for a body may wait without any body callback before the
/// exchange releases it to find out whether Envoy delivers bodies to held headers (ms). The
/// timer runs every second, so such a hold lasts between this and this plus one second.
pub const PROBE_AFTER_MS: u64 = 1_000;

/// A body callback within this long after a probe released the hold was buffered by Envoy
/// while the headers were held: safe mode (ms).
pub const PROBE_SETTLE_MS: u64 = 100;

/// What the filter knows about the proxy's handling of a held headers callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HoldMode {
    /// Not known yet: holds that wait for a body are probed.
    #[default]
    Unknown,
    /// Bodies reach a filter whose headers are held (`allow_on_headers_stop_iteration: true`).
    Full,
    /// A held headers callback stops the body too: headers are released before a body decision
    /// and a checked response is cut off rather than refused with a status.
    Safe,
}

impl HoldMode {
    /// Whether a request whose decision needs its body may hold its headers meanwhile.
    pub fn holds_for_body(self) -> bool {
        self != HoldMode::Safe
    }

    /// The mode as stored in shared data and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            HoldMode::Unknown => "unknown",
            HoldMode::Full => "full",
            HoldMode::Safe => "safe",
        }
    }

    /// The mode named by [`HoldMode::as_str`].
    pub fn parse(text: &str) -> Option<HoldMode> {
        match text {
            "unknown" => Some(HoldMode::Unknown),
            "full" => Some(HoldMode::Full),
            "safe" => Some(HoldMode::Safe),
            _ => None,
        }
    }
}
