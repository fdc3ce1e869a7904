use mqttcal_core::{node, NodeBuilder, NodeError};

struct Dmm;

#[node]
impl Dmm {
    #[capability]
    async fn measure(&self) -> Result<f64, NodeError> {
        Ok(1.0)
    }
}

fn main() {
    let _ = NodeBuilder::new("dmm").register(Dmm);
}
