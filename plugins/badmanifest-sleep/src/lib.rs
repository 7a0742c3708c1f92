//! Test-only: a plugin whose manifest misbehaves (sleep). Never install it.

const KIND: &str = "sleep";
include!("../../badmanifest/common.rs");
