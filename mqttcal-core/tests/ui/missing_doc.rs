use mqttcal_core::node;

struct Dmm;

#[node]
impl Dmm {
    #[capability]
    async fn measure(&self) -> Result<f64, mqttcal_core::NodeError> {
        Ok(1.0)
    }
}

fn main() {}
