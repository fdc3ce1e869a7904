//! `run <node>`: a reference node until SIGTERM, Ctrl-C or a `stop` message.

use std::sync::Arc;

use clap::{Args, ValueEnum};
use mqttcal_core::{error_chain, NodeBuilder};
use mqttcal_store::Store;

use super::connect::{connect_failure, Settings};
use super::Failure;

/// The reference nodes that `run` knows.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Kind {
    /// A bare node with `ping`, `map` and `stop` (the report's testnode)
    Base,
    /// The Virtual DMM (needs a `labd` section in the configuration file)
    Labd,
    /// Storage of `meas` readings (a `datad` section, or `MQTTCAL_DATABASE_URL`; default
    /// `sqlite:mqttcal.db`)
    Datad,
    /// The lab's logbook (a `logd` section, or `MQTTCAL_DATABASE_URL`; default
    /// `sqlite:mqttcal.db`)
    Logd,
    /// Calibration jobs through labd, results through datad (an optional `cald` section)
    Cald,
    /// The lab's entry point: presence, status, and calls forwarded as a policy of roles
    /// allows (an optional `ctrld` section: `policy`, or `policy_file`)
    Ctrld,
    /// Calibration certificates (DCC, HTML; PDF with the `pdf` feature) and reports from
    /// datad's records (an optional `tpld` section: the laboratory's details, a template
    /// folder)
    Tpld,
    /// The browser interface over HTTPS, every call made through ctrld (an optional `webd`
    /// section: listen, tls_cert, tls_key, users_file, ...; people: `mqttcal users add`)
    Webd,
}

/// Arguments of `run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Which node to run
    #[arg(value_enum)]
    kind: Kind,
    /// The node's name [default: the config's servicename, else the kind]
    #[arg(long)]
    name: Option<String>,
}

async fn builder(kind: Kind, name: &str, settings: &Settings) -> Result<NodeBuilder, Failure> {
    Ok(match kind {
        Kind::Base => mqttcal_nodes::base::node(name),
        Kind::Labd => mqttcal_nodes::labd::node(name, labd_config(settings)?),
        Kind::Datad => {
            let mut config: mqttcal_nodes::datad::DatadConfig =
                section(settings, "datad")?.unwrap_or_default();
            if config.labs && settings.config.layout == mqttcal_core::topics::Layout::Addressed {
                return Err(Failure::usage(
                    "`datad.labs` reads the labs' readings in the shared topic layout, and this configuration asks for the addressed one",
                ));
            }
            database_from_env(&mut config.database);
            let store = open_store(&config.database).await?;
            mqttcal_nodes::datad::node(name, &config, store)
        }
        Kind::Cald => {
            mqttcal_nodes::cald::node(name, section(settings, "cald")?.unwrap_or_default())
        }
        Kind::Ctrld => {
            mqttcal_nodes::ctrld::node(name, section(settings, "ctrld")?.unwrap_or_default())
                .map_err(|e| Failure::usage(e.to_string()))?
        }
        Kind::Tpld => {
            mqttcal_nodes::tpld::node(name, section(settings, "tpld")?.unwrap_or_default())
                .map_err(|e| Failure::resource(format!("tpld's templates: {e}")))?
        }
        Kind::Webd => {
            let config: mqttcal_webd::WebdConfig = section(settings, "webd")?.unwrap_or_default();
            let (builder, url) = mqttcal_webd::node(name, config)
                .await
                .map_err(|e| Failure::resource(e.to_string()))?;
            tracing::info!(%url, "webd serves the lab's pages");
            builder
        }
        Kind::Logd => {
            let mut config: mqttcal_nodes::logd::LogdConfig =
                section(settings, "logd")?.unwrap_or_default();
            database_from_env(&mut config.database);
            logd(name, &config).await?
        }
    })
}

/// Arguments of `acl`.
#[derive(Debug, Args)]
pub(crate) struct AclArgs {
    /// The logins of nodes (requests to any node, data under their own name)
    #[arg(long = "node", default_values = ["labd", "datad", "logd", "cald", "tpld", "ctrld"])]
    nodes: Vec<String>,
    /// The logins that may stop nodes
    #[arg(long = "admin", default_values = ["admin"])]
    admins: Vec<String>,
    /// The logins of nodes' durable intakes, as LOGIN=NODE
    #[arg(long = "intake", default_values = ["datad-ingest=datad", "logd-intake=logd"])]
    intakes: Vec<String>,
    /// ctrld's name, to which people's requests go
    #[arg(long, default_value = "ctrld")]
    ctrld: String,
}

/// Prints the Mosquitto ACL that ctrld's policy implies.
pub(crate) fn acl(a: AclArgs, settings: &Settings) -> Result<(), Failure> {
    let config: mqttcal_nodes::ctrld::CtrldConfig = section(settings, "ctrld")?.unwrap_or_default();
    let policy = config
        .load_policy()
        .map_err(|e| Failure::usage(e.to_string()))?;
    let intakes = a
        .intakes
        .iter()
        .map(|i| {
            i.split_once('=')
                .map(|(l, n)| (l.to_owned(), n.to_owned()))
                .ok_or_else(|| Failure::usage(format!("--intake `{i}`: write LOGIN=NODE")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let acl = mqttcal_nodes::ctrld::mosquitto_acl_with_intakes(
        &policy,
        &a.ctrld,
        &a.nodes,
        &intakes,
        &a.admins,
        &settings.config.prefix,
    )
    .map_err(|e| Failure::usage(e.to_string()))?;
    print!("{acl}");
    Ok(())
}

/// `MQTTCAL_DATABASE_URL`, when set, overrides the configured database.
fn database_from_env(database: &mut String) {
    if let Some(url) = std::env::var("MQTTCAL_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        *database = url;
    }
}

/// Opens a node's database; a failure is a resource failure (exit code 4), never a broker
/// failure.
pub(crate) async fn open_store(url: &str) -> Result<Arc<dyn Store>, Failure> {
    mqttcal_store::open(url)
        .await
        .map_err(|e| Failure::resource(error_chain(&e)))
}

/// logd with its checkpoint key and database, as `config` says.
pub(crate) async fn logd(
    name: &str,
    config: &mqttcal_nodes::logd::LogdConfig,
) -> Result<NodeBuilder, Failure> {
    let signer = config
        .signer()
        .map_err(|e| Failure::resource(error_chain(&e)))?;
    let store = open_store(&config.database).await?;
    let grace = std::time::Duration::from_secs_f64(config.lost_after_s.clamp(0.0, 86_400.0));
    Ok(mqttcal_nodes::logd::node_with_grace(
        name, store, signer, grace,
    ))
}

/// A section of the configuration file, if present.
pub(crate) fn section<T: serde::de::DeserializeOwned>(
    settings: &Settings,
    key: &str,
) -> Result<Option<T>, Failure> {
    let Some(value) = settings.config.sections.get(key).cloned() else {
        return Ok(None);
    };
    let file = settings
        .file
        .as_ref()
        .map_or("(none)".to_owned(), |p| p.display().to_string());
    serde_path_to_error::deserialize(value)
        .map(Some)
        .map_err(|e| {
            let path = e.path().to_string();
            Failure::usage(format!(
                "config file `{file}`: key `{key}.{path}`: {}",
                e.into_inner()
            ))
        })
}

/// The `labd` section of the configuration file.
pub(crate) fn labd_config(settings: &Settings) -> Result<mqttcal_nodes::labd::LabdConfig, Failure> {
    let file = settings
        .file
        .as_ref()
        .map_or("(none)".to_owned(), |p| p.display().to_string());
    let section = settings.config.sections.get("labd").cloned().ok_or_else(|| {
        Failure::usage(format!(
            "config file `{file}` has no `labd` section (see docs/instruments.md; `mqttcal sim-lab` prints one)"
        ))
    })?;
    serde_path_to_error::deserialize(section).map_err(|e| {
        let key = e.path().to_string();
        Failure::usage(format!(
            "config file `{file}`: key `labd.{key}`: {}",
            e.into_inner()
        ))
    })
}

pub(crate) async fn run(a: RunArgs, settings: Settings) -> Result<(), Failure> {
    let name = a
        .name
        .or_else(|| settings.config.servicename.clone())
        .unwrap_or_else(|| format!("{:?}", a.kind).to_lowercase());
    // Before the node is made: webd, for one, listens as soon as it is.
    refuse_a_second(&name, &settings).await?;
    let node = builder(a.kind, &name, &settings)
        .await?
        .prefix(settings.config.prefix.clone())
        .layout(settings.config.layout)
        .allow_stop_from(
            settings
                .config
                .stop_from
                .clone()
                .unwrap_or_else(|| vec![mqttcal_core::DEFAULT_STOP_FROM.to_owned()]),
        )
        .max_message_size(settings.config.mqtt.max_message_size)
        .build();
    let transport = settings.transport();
    let handle = node.start(&transport).await.map_err(connect_failure)?;
    let ctx = handle.context().clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("signal received, stopping");
        ctx.request_stop();
    });
    handle.wait().await.map_err(connect_failure)
}

/// How long `run` waits for a node of the same name to answer before it starts.
const PROBE: std::time::Duration = std::time::Duration::from_millis(700);

/// Refuses to start a node whose name another running node answers to: the two would
/// take the broker session from each other in turn, and act twice (a second cald marks the
/// first one's running jobs aborted). In the addressed layout the broker's one session per
/// login already stands in the way, and a probe would take that session itself.
async fn refuse_a_second(name: &str, settings: &Settings) -> Result<(), Failure> {
    if settings.config.layout != mqttcal_core::topics::Layout::Shared {
        return Ok(());
    }
    let client = settings.patient_client().await?;
    let answer = client
        .context()
        .request_timeout(name, "ping", serde_json::json!({}), PROBE)
        .await;
    client.close().await;
    match answer {
        // Whoever answers, even with an error, is a node running under that name.
        Ok(_) | Err(mqttcal_core::CallError::Remote { .. }) => Err(Failure::usage(format!(
            "a node named `{name}` already answers on this broker: stop it first (`mqttcal stop {name}`), or give this one another name (`--name`)"
        ))),
        Err(_) => Ok(()),
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
