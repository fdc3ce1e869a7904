//! The logbook for a time range as a printable document, with the chain's verification.

use mqttcal_core::clock::Timestamp;
use mqttcal_core::{Context, NodeError};
use mqttcal_messages::{Base64, CertificateDocument};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::gather::ask;
use super::Tpld;

/// Which entries.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogbookRequest {
    /// From this time (seconds since the Unix epoch; default: the first entry).
    #[serde(default)]
    pub since: Option<f64>,
    /// Up to this time (default: now).
    #[serde(default)]
    pub until: Option<f64>,
}

/// The logbook as rendered.
#[derive(Debug, Serialize, JsonSchema)]
pub struct LogbookDocument {
    /// `logbook`: the name `mqttcal call --out` gives its files.
    pub name: String,
    /// Entries in it.
    pub entries: usize,
    /// Whether logd found the whole chain intact.
    pub verified: bool,
    /// The document: `html`, base64.
    pub documents: Vec<CertificateDocument>,
}

/// The most entries one document holds.
const MOST: usize = 20_000;
/// Entries asked of logd at a time.
const PAGE: u64 = 1000;

fn utc(secs: f64) -> String {
    Timestamp::from_secs_f64(secs).utc_string()[..19].to_owned()
}

pub(super) async fn logbook(
    ctx: &Context,
    tpld: &Tpld,
    p: LogbookRequest,
) -> Result<LogbookDocument, NodeError> {
    let logd = tpld.config.logd.as_str();
    let mut entries: Vec<Value> = Vec::new();
    let mut offset = 0u64;
    loop {
        let page: Vec<Value> = ask(
            ctx,
            logd,
            "search",
            json!({"since": p.since, "until": p.until, "limit": PAGE, "offset": offset}),
        )
        .await?;
        let got = page.len() as u64;
        for mut e in page {
            if let Some(at) = e.get("at").and_then(Value::as_f64) {
                e["utc"] = json!(utc(at));
            }
            entries.push(e);
        }
        if entries.len() > MOST {
            return Err(NodeError::invalid_params(format!(
                "over {MOST} entries in this range: narrow it (`since`, `until`)"
            )));
        }
        if got < PAGE {
            break;
        }
        offset += got;
    }
    let verification: Value = ask(ctx, logd, "verify", json!({})).await?;
    let now = Timestamp::now().as_secs_f64();
    let from = p
        .since
        .or_else(|| entries.first().and_then(|e| e["at"].as_f64()))
        .map_or_else(|| "the start".to_owned(), utc);
    let to = utc(p.until.unwrap_or(now));
    let html = tpld
        .templates
        .render_with(
            "logbook.html",
            &json!({
                "laboratory": tpld.config.laboratory,
                "from": from,
                "to": to,
                "entries": entries,
                "verification": verification,
                "generated": utc(now),
                "software": format!("mqttcal {}", env!("CARGO_PKG_VERSION")),
            }),
        )
        .map_err(|e| NodeError::internal(e.to_string()))?;
    Ok(LogbookDocument {
        name: "logbook".into(),
        entries: entries.len(),
        verified: verification["ok"] == true,
        documents: vec![CertificateDocument {
            kind: "html".into(),
            media_type: "text/html".into(),
            content: Base64(html.into_bytes()),
        }],
    })
}
