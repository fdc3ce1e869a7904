//! The bare node: only the built-in capabilities, like the report's `testnode`.

use mqttcal_core::NodeBuilder;

/// A node named `name` with the built-in capabilities only; add your own before `build`.
pub fn node(name: &str) -> NodeBuilder {
    NodeBuilder::new(name)
}
