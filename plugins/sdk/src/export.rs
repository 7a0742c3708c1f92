//! The registration macros: the only place a plugin touches the component model.

/// Registers a plugin's tools and makes the crate a corral plugin component.
///
/// Use it once, at the crate root of a `cdylib`. `name` and `description` default to
/// the package's `CARGO_PKG_NAME` and `CARGO_PKG_DESCRIPTION`; the version is always
/// `CARGO_PKG_VERSION`; `capabilities` defaults to none ([`Capabilities`](crate::Capabilities)
/// is in scope inside the macro, no import needed). The fields come in this order.
///
/// ```ignore
/// corral_plugin::export_plugin! {
///     name: "grep",
///     description: "Search workspace files with regular expressions.",
///     capabilities: Capabilities { read: vec!["**".into()], ..Default::default() },
///     tools: [Grep, ListFiles],
/// }
/// ```
///
/// The generated `call` parses the input JSON into the tool's `Args` (a parse error
/// is invalid input naming serde's message) and answers an unknown tool name with
/// invalid input.
#[macro_export]
macro_rules! export_plugin {
    (
        $(name: $name:expr,)?
        $(description: $description:expr,)?
        $(capabilities: $capabilities:expr,)?
        tools: [$($tool:ty),+ $(,)?] $(,)?
    ) => {
        #[doc(hidden)]
        struct __CorralPlugin;

        impl __CorralPlugin {
            fn tools() -> ::std::vec::Vec<$crate::__private::Entry> {
                ::std::vec![$($crate::__private::entry::<$tool>()),+]
            }
        }

        impl $crate::__private::Guest for __CorralPlugin {
            fn manifest() -> $crate::__private::Manifest {
                #[allow(unused_imports)]
                use $crate::Capabilities;
                #[allow(unused_mut, unused_assignments)]
                let mut name: &'static str = ::core::env!("CARGO_PKG_NAME");
                $(name = $name;)?
                #[allow(unused_mut, unused_assignments)]
                let mut description: &'static str = ::core::env!("CARGO_PKG_DESCRIPTION");
                $(description = $description;)?
                #[allow(unused_mut, unused_assignments)]
                let mut capabilities = $crate::Capabilities::default();
                $(capabilities = $capabilities;)?
                $crate::__private::manifest(
                    $crate::__private::PluginInfo {
                        name,
                        version: ::core::env!("CARGO_PKG_VERSION"),
                        description,
                        capabilities,
                    },
                    &Self::tools(),
                )
            }

            fn call(
                tool: ::std::string::String,
                input: ::std::string::String,
            ) -> ::core::result::Result<::std::string::String, $crate::__private::WitToolError> {
                $crate::__private::dispatch(&tool, &input, &Self::tools())
            }
        }

        $crate::__private::bindings::__export_bindings!(__CorralPlugin with_types_in $crate::__private::bindings);
    };
}

/// Makes the crate a corral plugin with the one tool given, named after the package
/// and asking for no capabilities. Shorthand for
/// [`export_plugin!`](crate::export_plugin)`{ tools: [$tool] }`.
#[macro_export]
macro_rules! export_tool {
    ($tool:ty $(,)?) => {
        $crate::export_plugin! { tools: [$tool] }
    };
}
