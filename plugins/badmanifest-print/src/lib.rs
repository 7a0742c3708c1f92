//! Test-only: a plugin whose manifest misbehaves (print). Never install it.

const KIND: &str = "print";
include!("../../badmanifest/common.rs");
