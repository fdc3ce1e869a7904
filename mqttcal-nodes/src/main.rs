//! The `mqttcal` command: run nodes, call capabilities, watch traffic.

use std::process::ExitCode;

fn main() -> ExitCode {
    mqttcal_nodes::cli::main()
}
