//! Test-only: a plugin whose manifest misbehaves (osc). Never install it.

const KIND: &str = "osc";
include!("../../badmanifest/common.rs");
