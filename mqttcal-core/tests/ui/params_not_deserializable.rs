use mqttcal_core::node;

struct Settings {
    nplc: f64,
}

struct Dmm;

#[node]
impl Dmm {
    /// Configure.
    #[capability]
    async fn configure(&self, p: Settings) -> Result<f64, mqttcal_core::NodeError> {
        Ok(p.nplc)
    }
}

fn main() {}
