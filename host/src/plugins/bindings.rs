//! The generated bindings of the `corral:plugin` world. Private to the plugins module: the rest
//! of corral sees only [`super::Manifest`] and [`super::PluginTool`].

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    exports: { default: async },
});

pub use self::corral::plugin::types::{Manifest, ToolError};
