//! `import`: a lab's equipment register or calibration histories from CSV or JSON, checked
//! row by row and stored through datad.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use mqttcal_core::{error_chain, CallError, Client};
use mqttcal_messages::import::{self, Refused};
use mqttcal_messages::{CalibrationRecord, Equipment};
use serde_json::json;

use super::connect::Settings;
use super::Failure;

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum What {
    /// The equipment register (columns: the fields of `equipment`; `id` and `kind` required)
    Equipment,
    /// Calibration histories (columns: the fields of `calibration`)
    History,
}

/// Arguments of `import`.
#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// What the file holds
    what: What,
    /// The file: `.json` is read as a JSON array, anything else as CSV; `-` reads CSV
    /// from standard input
    file: PathBuf,
    /// The datad to store through
    #[arg(long, default_value = "datad")]
    node: String,
    /// Check every row and report, storing nothing
    #[arg(long)]
    dry_run: bool,
}

pub(crate) async fn import(a: ImportArgs, settings: Settings) -> Result<(), Failure> {
    let text = if a.file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| Failure::usage(format!("standard input: {e}")))?
    } else {
        std::fs::read_to_string(&a.file)
            .map_err(|e| Failure::usage(format!("{}: {e}", a.file.display())))?
    };
    if a.node.is_empty() || a.node.contains(['*', '/', '+', '#']) {
        return Err(Failure::usage(format!(
            "`--node {}`: name one datad (no `*`, `/`, `+` or `#`)",
            a.node
        )));
    }
    let json = a
        .file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let file = a.file.display().to_string();
    let bad_file = |e: import::ImportError| Failure::usage(format!("{file}: {e}"));
    let mut report = match a.what {
        What::Equipment => {
            let rows = if json {
                import::equipment_from_json(&text)
            } else {
                import::equipment_from_csv(&text)
            }
            .map_err(bad_file)?;
            let mut report = Report::checked(rows.accepted.len(), rows.refused);
            if !a.dry_run {
                store_equipment(rows.accepted, &a, &settings, &mut report).await?;
            }
            report
        }
        What::History => {
            let rows = if json {
                import::history_from_json(&text)
            } else {
                import::history_from_csv(&text)
            }
            .map_err(bad_file)?;
            let mut report = Report::checked(rows.accepted.len(), rows.refused);
            if !a.dry_run {
                store_history(rows.accepted, &a, &settings, &mut report).await?;
            }
            report
        }
    };
    report.print(&file, a.dry_run);
    if let Some(why) = report.stopped.take() {
        return Err(Failure::connect(why));
    }
    if report.refused.is_empty() {
        Ok(())
    } else {
        Err(Failure::silent(1))
    }
}

/// What happened to the rows of a file.
#[derive(Debug, Default)]
struct Report {
    stored: usize,
    present: usize,
    checked: usize,
    refused: Vec<Refused>,
    /// Why the import stopped before the end (datad stopped answering), if it did.
    stopped: Option<String>,
}

/// What a failed request means for the import.
enum Outcome {
    /// datad refused this row: report it, go on.
    Refused(String),
    /// No answer (or no connection): whether the row was stored is unknown, and the next
    /// rows would only wait as long. Stop; importing again is safe.
    Stop(String),
}

fn outcome(e: &CallError) -> Outcome {
    match e {
        CallError::Remote { .. } => Outcome::Refused(error_chain(e)),
        _ => Outcome::Stop(error_chain(e)),
    }
}

fn stop_message(line: usize, why: &str) -> String {
    format!(
        "stopped at line {line}: {why}; whether that row was stored is unknown, and the rows after it were not imported. Importing the file again is safe: nothing is stored twice"
    )
}

impl Report {
    /// What the file's checks found: `checked` rows ready, these refused.
    fn checked(checked: usize, refused: Vec<Refused>) -> Self {
        Self {
            checked,
            refused,
            ..Self::default()
        }
    }

    fn print(&mut self, file: &str, dry_run: bool) {
        self.refused.sort_by_key(|r| r.line);
        for r in &self.refused {
            println!("{file}:{}: refused: {}", r.line, r.reason);
        }
        if dry_run {
            println!(
                "{file}: {} row(s) ready to import, {} refused (nothing stored: --dry-run)",
                self.checked,
                self.refused.len()
            );
        } else {
            println!(
                "{file}: {} row(s) stored, {} already present, {} refused",
                self.stored,
                self.present,
                self.refused.len()
            );
        }
    }
}

/// Progress on standard error every `EVERY` rows, for long files.
const EVERY: usize = 200;

fn progress(done: usize, total: usize) {
    if done.is_multiple_of(EVERY) || done == total {
        eprintln!("import: {done}/{total}");
    }
}

/// Connects and checks that the datad answers, once, before any row.
async fn connect(settings: &Settings, node: &str) -> Result<Client, Failure> {
    let client = settings.client().await?;
    if let Err(e) = client
        .context()
        .request_timeout(node, "ping", json!({}), std::time::Duration::from_secs(5))
        .await
    {
        client.close().await;
        return Err(Failure::connect(format!(
            "{}; is datad running (`mqttcal run datad`), on this broker and prefix?",
            error_chain(&e)
        )));
    }
    Ok(client)
}

async fn store_equipment(
    rows: Vec<(usize, Equipment)>,
    a: &ImportArgs,
    settings: &Settings,
    report: &mut Report,
) -> Result<(), Failure> {
    let client = connect(settings, &a.node).await?;
    let total = rows.len();
    for (i, (line, row)) in rows.into_iter().enumerate() {
        let step = store_one_item(&client, &a.node, row).await;
        match step {
            Ok(true) => report.stored += 1,
            Ok(false) => report.present += 1,
            Err(Outcome::Refused(reason)) => report.refused.push(Refused { line, reason }),
            Err(Outcome::Stop(why)) => {
                report.stopped = Some(stop_message(line, &why));
                break;
            }
        }
        progress(i + 1, total);
    }
    client.close().await;
    Ok(())
}

/// Registers an item, keeping what the register holds for the fields the file leaves
/// empty (an import never erases); `false` when nothing changes.
async fn store_one_item(client: &Client, node: &str, row: Equipment) -> Result<bool, Outcome> {
    let stored =
        match client
            .context()
            .request(node, "equipment", json!({ "id": row.id }))
            .await
        {
            Ok(v) => Some(serde_json::from_value::<Equipment>(v).map_err(|e| {
                Outcome::Refused(format!("the register's entry cannot be read: {e}"))
            })?),
            Err(CallError::Remote { error, .. })
                if error.code == mqttcal_core::ErrorCode::InvalidParams =>
            {
                None
            }
            Err(e) => return Err(outcome(&e)),
        };
    let merged = match stored {
        Some(old) => {
            let merged = merge(row, &old);
            if merged == old {
                return Ok(false);
            }
            merged
        }
        None => row,
    };
    client
        .context()
        .request(node, "register_equipment", &merged)
        .await
        .map(|_| true)
        .map_err(|e| outcome(&e))
}

/// `row` with its empty fields taken from `old`.
fn merge(row: Equipment, old: &Equipment) -> Equipment {
    fn keep<T: Clone>(new: Option<T>, old: &Option<T>) -> Option<T> {
        new.or_else(|| old.clone())
    }
    Equipment {
        description: keep(row.description, &old.description),
        manufacturer: keep(row.manufacturer, &old.manufacturer),
        model: keep(row.model, &old.model),
        serial: keep(row.serial, &old.serial),
        owner: keep(row.owner, &old.owner),
        nominal_value: keep(row.nominal_value, &old.nominal_value),
        unit: keep(row.unit, &old.unit),
        location: keep(row.location, &old.location),
        calibration_due: keep(row.calibration_due, &old.calibration_due),
        checked_in: keep(row.checked_in, &old.checked_in),
        checked_out: keep(row.checked_out, &old.checked_out),
        ..row
    }
}

/// What makes two calibrations of one item the same (importing a file twice stores each
/// once).
/// Date, value and uncertainty of a calibration, as bits.
type Key = (u64, u64, u64);

fn same_key(c: &CalibrationRecord) -> Key {
    // + 0.0 makes −0 and 0 one key.
    (
        (c.calibrated_at + 0.0).to_bits(),
        (c.value + 0.0).to_bits(),
        (c.uncertainty + 0.0).to_bits(),
    )
}

async fn store_history(
    rows: Vec<(usize, CalibrationRecord)>,
    a: &ImportArgs,
    settings: &Settings,
    report: &mut Report,
) -> Result<(), Failure> {
    let client = connect(settings, &a.node).await?;
    // Each item's history as stored, to skip what an earlier import brought; or why it
    // cannot be read (then its rows are refused: storing them could store them twice).
    let mut known: HashMap<String, Result<HashSet<Key>, String>> = HashMap::new();
    let total = rows.len();
    for (i, (line, c)) in rows.into_iter().enumerate() {
        if !known.contains_key(&c.equipment) {
            let history = match client
                .context()
                .request(&a.node, "history", json!({ "id": c.equipment }))
                .await
            {
                Ok(v) => serde_json::from_value::<Vec<CalibrationRecord>>(v)
                    .map(|h| h.iter().map(same_key).collect())
                    .map_err(|e| format!("the item's stored history cannot be read: {e}")),
                Err(e) => match outcome(&e) {
                    Outcome::Refused(why) => {
                        Err(format!("the item's history cannot be checked: {why}"))
                    }
                    Outcome::Stop(why) => {
                        report.stopped = Some(stop_message(line, &why));
                        break;
                    }
                },
            };
            known.insert(c.equipment.clone(), history);
        }
        let seen = match known.get_mut(&c.equipment) {
            Some(Ok(seen)) => seen,
            Some(Err(why)) => {
                report.refused.push(Refused {
                    line,
                    reason: why.clone(),
                });
                progress(i + 1, total);
                continue;
            }
            None => continue,
        };
        if seen.contains(&same_key(&c)) {
            report.present += 1;
            progress(i + 1, total);
            continue;
        }
        match client
            .context()
            .request(&a.node, "add_calibration", &c)
            .await
        {
            Ok(_) => {
                report.stored += 1;
                seen.insert(same_key(&c));
            }
            Err(err) => match outcome(&err) {
                Outcome::Refused(reason) => report.refused.push(Refused { line, reason }),
                Outcome::Stop(why) => {
                    report.stopped = Some(stop_message(line, &why));
                    break;
                }
            },
        }
        progress(i + 1, total);
    }
    client.close().await;
    Ok(())
}
