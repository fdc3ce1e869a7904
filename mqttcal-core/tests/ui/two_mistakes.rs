use mqttcal_core::{node, NodeBuilder, NodeError};

struct Dmm;

#[node]
impl Dmm {
    /// Take one reading, in volts
    #[capability]
    async fn measure(&self) -> Option<f64> {
        Some(1.0)
    }

    #[capability]
    async fn range(&self) -> Result<f64, NodeError> {
        Ok(10.0)
    }
}

fn main() {
    let _ = NodeBuilder::new("dmm").register(Dmm);
}
