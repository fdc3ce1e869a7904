use mqttcal_core::node;

struct Dmm;

#[node]
impl Dmm {
    /// Measure.
    #[capability]
    async fn measure(&self) -> Result<f64, mqttcal_core::NodeError> {
        Ok(1.0)
    }

    /// Measure again, under the same id.
    #[capability(id = "measure")]
    async fn measure_again(&self) -> Result<f64, mqttcal_core::NodeError> {
        Ok(2.0)
    }
}

fn main() {}
