//! Test-only: a plugin whose manifest misbehaves (panic). Never install it.

const KIND: &str = "panic";
include!("../../badmanifest/common.rs");
