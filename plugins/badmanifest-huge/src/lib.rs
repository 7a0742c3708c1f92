//! Test-only: a plugin whose manifest misbehaves (huge). Never install it.

const KIND: &str = "huge";
include!("../../badmanifest/common.rs");
