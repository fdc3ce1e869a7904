//! Procedural macros of mqttcal, re-exported by `mqttcal-core`: `#[node]` on an `impl`
//! block turns its `#[capability]` methods into registered capabilities.
//!
//! The generated code only calls `mqttcal_core::__private`, so it does not depend on what
//! the user's crate imports. See `mqttcal_core::node` for the documented entry point.

use proc_macro::TokenStream;

mod node;

/// Registers the `#[capability]` methods of an `impl` block (see `mqttcal_core::node`).
#[proc_macro_attribute]
pub fn node(attr: TokenStream, item: TokenStream) -> TokenStream {
    node::expand(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Marks a method of a `#[node]` impl block as a capability (see `mqttcal_core::node`).
#[proc_macro_attribute]
pub fn capability(_attr: TokenStream, item: TokenStream) -> TokenStream {
    let item: proc_macro2::TokenStream = item.into();
    let err = syn::Error::new_spanned(
        &item,
        "#[capability] works only on methods of an impl block marked #[mqttcal_core::node]",
    );
    let mut out = err.into_compile_error();
    out.extend(item);
    out.into()
}
