//! The fuzz targets' bodies (`../targets.rs`), shared with the main workspace's corpus replay.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../targets.rs"]
pub mod targets;
