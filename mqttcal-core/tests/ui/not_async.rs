use mqttcal_core::node;

struct Dmm;

#[node]
impl Dmm {
    /// Measure.
    #[capability]
    fn measure(&self) -> Result<f64, mqttcal_core::NodeError> {
        Ok(1.0)
    }
}

fn main() {}
