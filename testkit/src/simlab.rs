//! Simulated instruments from `mqttcal sim-lab`, for tests and benches that run labd as a
//! process of its own.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Starts `<mqttcal> sim-lab --time-factor <time_factor>` (its log in `log`) and returns the
/// process with the labd configuration section it printed. The simulators run until the
/// process is killed; its further output is read and dropped, so they never block on it.
pub fn spawn_sim_lab(mqttcal: &Path, time_factor: &str, log: &Path) -> (Child, String) {
    let mut child = Command::new(mqttcal)
        .args(["sim-lab", "--time-factor", time_factor])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).expect("create the sim-lab log"))
        .spawn()
        .expect("start mqttcal sim-lab");
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut section = String::new();
    let mut inside = false;
    for line in lines.by_ref().map_while(Result::ok) {
        if line.starts_with("a labd configuration") {
            inside = true;
        } else if inside {
            section.push_str(&line);
            section.push('\n');
            if line.trim_start().starts_with("channels:") {
                break;
            }
        }
    }
    assert!(
        section.contains("labd:"),
        "sim-lab printed no configuration"
    );
    std::thread::spawn(move || lines.for_each(drop));
    (child, section)
}
