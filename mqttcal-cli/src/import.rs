//! `import`: a lab's equipment register or calibration histories from CSV or JSON, checked
//! row by row and stored through datad.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use mqttcal_core::{error_chain, Client};
use mqttcal_messages::import::{self, Import, Refused};
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
    let json = a.file.extension().is_some_and(|e| e == "json");
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
            store_equipment(rows, &a, &settings).await?
        }
        What::History => {
            let rows = if json {
                import::history_from_json(&text)
            } else {
                import::history_from_csv(&text)
            }
            .map_err(bad_file)?;
            store_history(rows, &a, &settings).await?
        }
    };
    report.print(&file, a.dry_run);
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
}

impl Report {
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
    if done % EVERY == 0 || done == total {
        eprintln!("import: {done}/{total}");
    }
}

async fn connect(settings: &Settings) -> Result<Client, Failure> {
    settings.client().await
}

async fn store_equipment(
    rows: Import<Equipment>,
    a: &ImportArgs,
    settings: &Settings,
) -> Result<Report, Failure> {
    let mut report = Report {
        checked: rows.accepted.len(),
        refused: rows.refused,
        ..Report::default()
    };
    if a.dry_run {
        return Ok(report);
    }
    let client = connect(settings).await?;
    let total = rows.accepted.len();
    for (i, (line, e)) in rows.accepted.into_iter().enumerate() {
        // Registering is an upsert: importing the same register again changes nothing.
        match client
            .context()
            .request(&a.node, "register_equipment", &e)
            .await
        {
            Ok(_) => report.stored += 1,
            Err(err) => report.refused.push(Refused {
                line,
                reason: error_chain(&err),
            }),
        }
        progress(i + 1, total);
    }
    client.close().await;
    Ok(report)
}

/// What makes two calibrations of one item the same (importing a file twice stores each
/// once).
fn same_key(c: &CalibrationRecord) -> (u64, u64, u64) {
    (
        c.calibrated_at.to_bits(),
        c.value.to_bits(),
        c.uncertainty.to_bits(),
    )
}

async fn store_history(
    rows: Import<CalibrationRecord>,
    a: &ImportArgs,
    settings: &Settings,
) -> Result<Report, Failure> {
    let mut report = Report {
        checked: rows.accepted.len(),
        refused: rows.refused,
        ..Report::default()
    };
    if a.dry_run {
        return Ok(report);
    }
    let client = connect(settings).await?;
    // Each item's history as stored, to skip what an earlier import brought.
    let mut known: HashMap<String, HashSet<(u64, u64, u64)>> = HashMap::new();
    let total = rows.accepted.len();
    for (i, (line, c)) in rows.accepted.into_iter().enumerate() {
        if !known.contains_key(&c.equipment) {
            let history = client
                .context()
                .request(&a.node, "history", json!({ "id": c.equipment }))
                .await
                .map_err(|e| Failure::reply(error_chain(&e)))?;
            let stored: Vec<CalibrationRecord> =
                serde_json::from_value(history).unwrap_or_default();
            known.insert(c.equipment.clone(), stored.iter().map(same_key).collect());
        }
        let seen = known.entry(c.equipment.clone()).or_default();
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
            Err(err) => report.refused.push(Refused {
                line,
                reason: error_chain(&err),
            }),
        }
        progress(i + 1, total);
    }
    client.close().await;
    Ok(report)
}
