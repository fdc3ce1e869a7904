//! The `#[node]` and `#[capability]` attributes.

/// Turns the `#[capability]` methods of an `impl` block into capabilities.
///
/// Each capability method is `async`, takes `&self` or `&mut self`, optionally one
/// parameter struct (`Deserialize + JsonSchema`) and optionally `&Context`, and returns
/// `Result<R, E>` with `R: Serialize + JsonSchema` and `E: Into<NodeError>`. Its doc comment
/// becomes the description that `map` lists; its name becomes the id unless
/// `#[capability(id = "...")]` says otherwise. Register the value with
/// [`NodeBuilder::register`](crate::NodeBuilder::register).
///
/// Concurrency: the value lives behind a read-write lock. Methods taking `&self` run
/// concurrently; a method taking `&mut self` runs alone, after the calls in progress end.
/// The built-in `ping`, `map` and `stop` never wait for either. `#[capability(concurrency
/// = 1)]` refuses a second call of the method while one runs (`busy`, naming the running
/// call) instead of queueing it (see [`NodeBuilder::concurrency`](crate::NodeBuilder::concurrency)).
///
/// ```
/// use mqttcal_core::{Context, NodeBuilder, NodeError, node};
/// use schemars::JsonSchema;
/// use serde::Deserialize;
///
/// #[derive(Deserialize, JsonSchema)]
/// #[serde(deny_unknown_fields)]
/// struct Read {
///     /// Channel, 0 to 7.
///     channel: u8,
/// }
///
/// struct Thermometer {
///     offset: f64,
/// }
///
/// #[node]
/// impl Thermometer {
///     /// Read one channel, in degrees Celsius.
///     #[capability]
///     async fn read(&self, p: Read, _ctx: &Context) -> Result<f64, NodeError> {
///         Ok(20.0 + self.offset + f64::from(p.channel))
///     }
///
///     /// Set the calibration offset, in kelvin.
///     #[capability(id = "set-offset")]
///     async fn set_offset(&mut self, p: Offset) -> Result<(), NodeError> {
///         self.offset = p.kelvin;
///         Ok(())
///     }
/// }
///
/// #[derive(Deserialize, JsonSchema)]
/// struct Offset {
///     kelvin: f64,
/// }
///
/// let node = NodeBuilder::new("thermo").register(Thermometer { offset: 0.0 }).build();
/// let ids: Vec<String> = node.capabilities().into_iter().map(|c| c.id).collect();
/// assert_eq!(ids, ["ping", "map", "stop", "read", "set-offset"]);
/// ```
pub use mqttcal_macros::node;

/// Marks a capability method inside a [`node`] impl block.
pub use mqttcal_macros::capability;
