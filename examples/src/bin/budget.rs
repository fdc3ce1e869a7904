//! Run with: `cargo run -p mqttcal-examples --bin budget -- budget.json 0.95` (the probability is optional)
//!
//! Evaluates an uncertainty budget written as JSON (`mqttcal_metrology::Budget`: `inputs`
//! with `name`, `value`, `u`, `sensitivity`, `kind`, `dof` (null: infinite), and
//! `correlations`), reads `-` as standard input, and prints one line per input, u_c, ν_eff,
//! k and U (to two significant digits). Exits non-zero with the reason on a bad budget.

use mqttcal_metrology::{Budget, Coverage, MetrologyError};

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("budget: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, rest @ ..] = args.as_slice() else {
        return Err("usage: budget FILE|- [COVERAGE_PROBABILITY]".into());
    };
    let text = if path == "-" {
        std::io::read_to_string(std::io::stdin()).map_err(|e| e.to_string())?
    } else {
        std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?
    };
    let budget: Budget = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    let coverage = match rest.first() {
        Some(p) => {
            let p: f64 = p
                .parse()
                .map_err(|_| format!("`{p}` is not a coverage probability"))?;
            Coverage::probability(p).map_err(|e: MetrologyError| e.to_string())?
        }
        None => Coverage::default(),
    };
    let e = budget.evaluate(&coverage).map_err(|e| e.to_string())?;
    println!(
        "{:<24} {:>14} {:>12} {:>12} {:>14} {:>8} {:>7}",
        "input", "value", "u", "c", "|c|·u", "dof", "share"
    );
    for c in &e.contributions {
        let dof = c.dof.map_or("inf".to_owned(), |nu| format!("{nu:.1}"));
        println!(
            "{:<24} {:>14.6e} {:>12.3e} {:>12.3e} {:>14.4e} {:>8} {:>6.1}%",
            c.name,
            c.value,
            c.u,
            c.sensitivity,
            c.contribution,
            dof,
            100.0 * c.share
        );
    }
    let nu = e.dof_eff.map_or("inf".to_owned(), |nu| format!("{nu:.2}"));
    println!("u_c = {:.4e}", e.combined_u);
    println!("nu_eff = {nu}");
    println!(
        "k = {:.3} (coverage probability {})",
        e.k, e.coverage_probability
    );
    let expanded = mqttcal_metrology::Reported::new(0.0, e.expanded, Default::default())
        .map(|r| r.expanded_text())
        .unwrap_or_else(|_| "0".into());
    println!("U = {expanded}");
    Ok(())
}
