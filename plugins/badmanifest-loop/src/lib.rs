//! Test-only: a plugin whose manifest misbehaves (loop). Never install it.

const KIND: &str = "loop";
include!("../../badmanifest/common.rs");
