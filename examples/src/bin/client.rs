//! Run with: cargo run -p mqttcal-examples --bin client -- mqtt://127.0.0.1:1883 thermo read '{"channel": 3}'
//!
//! Calls one capability of one node and prints the reply value; exits non-zero on an error
//! reply or when no reply comes within 5 s.

use mqttcal_core::config::MqttConfig;
use mqttcal_core::transport::MqttTransport;
use mqttcal_core::{error_chain, Client};
use serde_json::Value;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, node, capability, rest @ ..] = args.as_slice() else {
        eprintln!("usage: client BROKER_URL NODE CAPABILITY [JSON_PARAMS]");
        return std::process::ExitCode::from(2);
    };
    let params: Value = match rest.first() {
        Some(text) => match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("parameters are not JSON: {e}");
                return std::process::ExitCode::from(2);
            }
        },
        None => Value::Object(Default::default()),
    };
    let mut cfg = MqttConfig::default();
    if let Err(e) = cfg.apply_url(url) {
        eprintln!("{e}");
        return std::process::ExitCode::from(2);
    }
    let client = match Client::connect(
        &MqttTransport::new(cfg),
        &format!("example-client-{}", std::process::id()),
        "",
    )
    .await
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}", error_chain(&e));
            return std::process::ExitCode::from(3);
        }
    };
    let result = client.context().request(node, capability, params).await;
    client.close().await;
    match result {
        Ok(v) => {
            println!("{v}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}", error_chain(&e));
            std::process::ExitCode::from(1)
        }
    }
}
