//! `call`, `map`, `ping` and `stop`.

use std::io::IsTerminal;
use std::time::Duration;

use clap::Args;
use mqttcal_core::envelope::Envelope;
use mqttcal_core::{error_chain, Gather};
use serde_json::{Map, Value};

use super::connect::Settings;
use super::Failure;

/// Arguments of `call`.
#[derive(Debug, Args)]
pub(crate) struct CallArgs {
    /// The node, or `*` for every node that has the capability
    node: String,
    /// The capability id
    capability: String,
    /// Parameters as a JSON object, e.g. '{"channel": 3}'
    params: Option<String>,
    /// Write what the reply carries as files, and print their paths in place of their
    /// content: its `documents` (tpld's certificates) into this folder, its `content`
    /// (datad's `export`) into this file (or into this folder as `export.csv`/`.json`)
    #[arg(long, value_name = "PATH")]
    out: Option<std::path::PathBuf>,
    #[command(flatten)]
    wait: WaitArgs,
}

/// Arguments of `map` and `ping`.
#[derive(Debug, Args)]
pub(crate) struct TargetArgs {
    /// The node, or `*` for every node
    #[arg(default_value = "*")]
    node: String,
    #[command(flatten)]
    wait: WaitArgs,
}

/// Arguments of `map`.
#[derive(Debug, Args)]
pub(crate) struct MapArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// JSON lines even on a terminal
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct WaitArgs {
    /// Seconds to wait for replies [default: 5 for one node, 2 for `*`]; a call to one
    /// node that reports progress waits this long after its last progress message
    #[arg(long)]
    timeout: Option<f64>,
    /// With `*`: stop waiting after this many replies
    #[arg(long)]
    expect: Option<usize>,
    /// Seconds a call to one node waits in all, however long it keeps reporting progress
    #[arg(long, default_value_t = 600.0, value_name = "SECONDS")]
    max_wait: f64,
}

fn parse_params(text: Option<&str>) -> Result<Map<String, Value>, Failure> {
    let Some(text) = text else {
        return Ok(Map::new());
    };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Failure::usage(
            "parameters must be a JSON object, e.g. '{\"channel\": 3}'",
        )),
        Err(e) => Err(Failure::usage(format!(
            "parameters are not valid JSON: {e}"
        ))),
    }
}

fn gather_of(node: &str, wait: &WaitArgs) -> Result<Gather, Failure> {
    let broadcast = node == "*";
    let secs = wait.timeout.unwrap_or(if broadcast { 2.0 } else { 5.0 });
    if !(secs.is_finite() && secs > 0.0) {
        return Err(Failure::usage(
            "--timeout must be a positive number of seconds",
        ));
    }
    Ok(Gather {
        timeout: Duration::from_secs_f64(secs),
        expect: if broadcast { wait.expect } else { Some(1) },
    })
}

/// `--max-wait`, checked.
fn max_wait(wait: &WaitArgs) -> Result<Duration, Failure> {
    let secs = wait.max_wait;
    if !(secs.is_finite() && secs > 0.0) {
        return Err(Failure::usage(
            "--max-wait must be a positive number of seconds",
        ));
    }
    Ok(Duration::from_secs_f64(secs.min(365.0 * 86_400.0)))
}

#[allow(clippy::too_many_arguments)]
async fn request(
    settings: &Settings,
    node: &str,
    capability: &str,
    params: Map<String, Value>,
    gather: Gather,
    at_most: Duration,
    out: Option<&std::path::Path>,
    table: bool,
) -> Result<(), Failure> {
    let (client, progress) = if node == "*" {
        (settings.client().await?, None)
    } else {
        // Progress comes on the same connection, subscribed before the request goes out.
        let (client, rx) = settings
            .client_listening(&[mqttcal_core::topics::PROGRESS])
            .await?;
        (client, Some(rx))
    };
    let ctx = client.context().clone();
    let (replies, silence) = match progress {
        None => {
            let replies = ctx
                .request_envelopes(node, capability, params, gather)
                .await
                .map_err(|e| Failure::reply(error_chain(&e)));
            let silence = match &replies {
                Ok(r) if r.is_empty() => Some(
                    super::explain::silent_broadcast(&ctx, settings, capability, gather.timeout)
                        .await,
                ),
                _ => None,
            };
            (replies, silence)
        }
        Some(rx) => {
            let wait = super::progress::Wait {
                timeout: gather.timeout,
                at_most: at_most.max(gather.timeout),
            };
            match super::progress::wait_reply(&ctx, rx, node, capability, params, wait).await {
                Ok(w) if w.replies.is_empty() => {
                    let why = super::explain::silent_node(
                        &ctx,
                        settings,
                        node,
                        capability,
                        super::explain::Quiet {
                            waited: gather.timeout,
                            progressed: w.progressed,
                            at_most: w.at_most.then_some(at_most),
                        },
                    )
                    .await;
                    (Ok(Vec::new()), Some(why))
                }
                Ok(w) => (Ok(w.replies), None),
                Err(e) => (Err(e), None),
            }
        }
    };
    client.close().await;
    let mut replies = replies?;
    if let Some(why) = silence {
        return Err(Failure::reply(why));
    }
    if let Some(dir) = out {
        let carries = |r: &Envelope| {
            r.reply
                .as_ref()
                .is_some_and(|v| v.get("documents").is_some() || v.get("content").is_some())
        };
        if !replies.is_empty() && !replies.iter().any(carries) {
            eprintln!(
                "note: nothing in the reply to write to {} (`--out` writes a reply's `documents` or `content`)",
                dir.display()
            );
        }
        for r in &mut replies {
            if let Some(reply) = r.reply.as_mut() {
                write_documents(reply, dir)?;
                write_content(reply, dir)?;
            }
        }
    }
    if table && std::io::stdout().is_terminal() {
        super::map_table::print(&replies);
    } else {
        print_replies(&replies);
    }
    if let Some(r) = replies.iter().find(|r| r.error.is_some()) {
        if let Some(e) = &r.error {
            eprintln!(
                "error: {}: {} ({})",
                super::terminal::safe(&r.from, 256),
                super::terminal::safe(&e.message, 2000),
                e.code.as_str()
            );
        }
        return Err(Failure::silent(1));
    }
    // A check that ran and failed (logd's `verify`, a self-test) is a failure too: a script
    // testing the exit code must not read a broken chain as success.
    if let Some(r) = replies.iter().find(|r| failed_check(r.reply.as_ref())) {
        return Err(Failure::reply(format!(
            "`{}` reports a failed check (`ok: false`)",
            r.from
        )));
    }
    Ok(())
}

/// Writes each of the reply's `documents` (`kind`, `media_type`, base64 `content`) into
/// `dir` as `<number>.<kind's extension>` (or the reply's `name`), whole or not at all (a temporary file renamed),
/// and puts its path in place of its content.
fn write_documents(reply: &mut Value, dir: &std::path::Path) -> Result<(), Failure> {
    let stem = reply
        .get("number")
        .or_else(|| reply.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("document")
        .to_owned();
    let Some(docs) = reply.get_mut("documents").and_then(Value::as_array_mut) else {
        return Ok(());
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::resource(format!("{}: {e}", dir.display())))?;
    for doc in docs {
        let Ok(parsed) =
            serde_json::from_value::<mqttcal_messages::CertificateDocument>(doc.clone())
        else {
            continue;
        };
        let file = mqttcal_messages::CertificateDocument::file_name(&stem, &parsed.kind);
        let path = dir.join(&file);
        write_whole(&path, &parsed.content.0)?;
        doc["file"] = Value::from(path.display().to_string());
        if let Some(m) = doc.as_object_mut() {
            m.remove("content");
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` whole or not at all: into a new file of a name of its own
/// beside it (never an existing file or link), then renamed over `path`.
fn write_whole(path: &std::path::Path, bytes: &[u8]) -> Result<(), Failure> {
    use std::io::Write as _;
    let fail = |e: std::io::Error| Failure::resource(format!("{}: {e}", path.display()));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let part = path.with_file_name(format!(".{name}.{}-{stamp}.part", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&part)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&part, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    written.map_err(fail)
}

/// Writes a reply's `content` text (datad's `export`) into `out`, a file, or a folder
/// (an existing one, or a path ending in `/`) as `export.<format>`, whole or not at all,
/// and puts the file's path in place of the content.
fn write_content(reply: &mut Value, out: &std::path::Path) -> Result<(), Failure> {
    let Some(content) = reply.get("content").and_then(Value::as_str) else {
        return Ok(());
    };
    let ext = match reply.get("format").and_then(Value::as_str) {
        Some(f) if f.chars().all(|c| c.is_ascii_alphanumeric()) && !f.is_empty() => f,
        _ => "txt",
    };
    let folder = out.is_dir() || out.as_os_str().to_string_lossy().ends_with('/');
    let path = if folder {
        std::fs::create_dir_all(out)
            .map_err(|e| Failure::resource(format!("{}: {e}", out.display())))?;
        out.join(format!("export.{ext}"))
    } else {
        out.to_path_buf()
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| Failure::resource(format!("{}: {e}", parent.display())))?;
    }
    write_whole(&path, content.as_bytes())?;
    if let Some(m) = reply.as_object_mut() {
        m.remove("content");
        m.insert("file".into(), Value::from(path.display().to_string()));
    }
    Ok(())
}

/// A reply that is an object with `"ok": false`.
fn failed_check(reply: Option<&Value>) -> bool {
    reply.and_then(|r| r.get("ok")) == Some(&Value::Bool(false))
}

fn print_replies(replies: &[Envelope]) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for r in replies {
        if let Ok(line) = serde_json::to_string(r) {
            let _ = writeln!(out, "{line}");
        }
    }
    let _ = out.flush();
}

pub(crate) async fn call(a: CallArgs, settings: Settings) -> Result<(), Failure> {
    let params = parse_params(a.params.as_deref())?;
    let gather = gather_of(&a.node, &a.wait)?;
    let at_most = max_wait(&a.wait)?;
    request(
        &settings,
        &a.node,
        &a.capability,
        params,
        gather,
        at_most,
        a.out.as_deref(),
        false,
    )
    .await
}

pub(crate) async fn builtin(cap: &str, a: TargetArgs, settings: Settings) -> Result<(), Failure> {
    let gather = gather_of(&a.node, &a.wait)?;
    let at_most = max_wait(&a.wait)?;
    request(
        &settings,
        &a.node,
        cap,
        Map::new(),
        gather,
        at_most,
        None,
        false,
    )
    .await
}

pub(crate) async fn map(a: MapArgs, settings: Settings) -> Result<(), Failure> {
    let gather = gather_of(&a.target.node, &a.target.wait)?;
    let node = &a.target.node;
    let at_most = max_wait(&a.target.wait)?;
    request(
        &settings,
        node,
        "map",
        Map::new(),
        gather,
        at_most,
        None,
        !a.json,
    )
    .await
}
