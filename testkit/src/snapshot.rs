//! Snapshot tests: a text compared with the committed file that holds it.

use std::path::Path;

/// Compares `actual` with the file at `path`; with `MQTTCAL_UPDATE_SNAPSHOTS=1` set, writes
/// it instead. `what` says in the failure what changed (e.g. "the `map` reply of labd").
pub fn check_snapshot(path: &Path, actual: &str, what: &str) {
    if std::env::var_os("MQTTCAL_UPDATE_SNAPSHOTS").is_some() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("snapshot folder");
        }
        std::fs::write(path, actual).expect("write the snapshot");
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|_| {
        panic!(
            "no snapshot {}: run the test with MQTTCAL_UPDATE_SNAPSHOTS=1 to write it",
            path.display()
        )
    });
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .map_or_else(
                || expected.lines().count().min(actual.lines().count()) + 1,
                |i| i + 1,
            );
        panic!(
            "{what} changed (first difference at line {line} of {}); review it, then run with MQTTCAL_UPDATE_SNAPSHOTS=1\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        );
    }
}
