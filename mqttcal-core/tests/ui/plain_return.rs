use mqttcal_core::{node, NodeBuilder};

struct Dmm;

#[node]
impl Dmm {
    /// Take one reading, in volts
    #[capability]
    async fn measure(&self) -> f64 {
        1.0
    }
}

fn main() {
    let _ = NodeBuilder::new("dmm").register(Dmm);
}
