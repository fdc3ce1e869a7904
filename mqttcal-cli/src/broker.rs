//! `broker` and `lab`: the embedded broker, alone or with the reference nodes.

use clap::Args;
use mqttcal_core::broker::EmbeddedBroker;
use mqttcal_core::config::MqttConfig;
use mqttcal_core::transport::MqttTransport;
use mqttcal_core::{error_chain, NodeHandle};

use super::connect::{connect_failure, Settings};
use super::run::shutdown_signal;
use super::Failure;

/// Arguments of `broker`.
#[derive(Debug, Args)]
pub(crate) struct BrokerArgs {
    /// MQTT 5 port for mqttcal nodes; if it is busy, the first free one of the ten after it, else any (0: any)
    #[arg(long, default_value_t = 1883)]
    port: u16,
    /// MQTT 3.1.1 port for report-style peers (0: any free port)
    #[arg(long, default_value_t = 0)]
    v4_port: u16,
}

/// Arguments of `lab`.
#[derive(Debug, Args)]
pub(crate) struct LabArgs {
    #[command(flatten)]
    broker: BrokerArgs,
    /// Stop after this many seconds (default: run until Ctrl-C or SIGTERM)
    #[arg(long)]
    seconds: Option<f64>,
    /// Wall-clock seconds per simulated second of the instruments (1: real timing)
    #[arg(long, default_value_t = 1.0)]
    time_factor: f64,
    /// Where datad stores readings: `sqlite:PATH` or `postgres://...`
    #[arg(
        long,
        env = "MQTTCAL_DATABASE_URL",
        hide_env_values = true,
        default_value = "sqlite:mqttcal-lab.db"
    )]
    database: String,
    /// The key that signs logbook checkpoints, made at the first start if missing (default:
    /// beside a SQLite database, `<database>.checkpoint-key`; `mqttcal-lab.checkpoint-key`
    /// for PostgreSQL). Keep it outside the database
    #[arg(long)]
    checkpoint_key: Option<std::path::PathBuf>,
    /// webd's HTTPS port; a free port is taken if it is busy (0: any)
    #[arg(long, default_value_t = 8443)]
    web_port: u16,
}

/// Where the lab keeps its checkpoint key unless told.
fn default_key_path(database: &str) -> std::path::PathBuf {
    match database.strip_prefix("sqlite:") {
        Some(path) if !path.is_empty() => format!("{path}.checkpoint-key").into(),
        _ => "mqttcal-lab.checkpoint-key".into(),
    }
}

/// Where the lab's labd keeps the readings the broker has not taken yet.
fn default_outbox(database: &str) -> std::path::PathBuf {
    match database.strip_prefix("sqlite:") {
        Some(path) if !path.is_empty() => format!("{path}.labd-outbox").into(),
        _ => "mqttcal-lab.labd-outbox".into(),
    }
}

/// Where the lab's webd keeps its certificate and users unless told.
fn default_web_dir(database: &str) -> std::path::PathBuf {
    match database.strip_prefix("sqlite:") {
        Some(path) if !path.is_empty() => format!("{path}.webd").into(),
        _ => "mqttcal-lab.webd".into(),
    }
}

fn start(a: &BrokerArgs, settings: &Settings) -> Result<EmbeddedBroker, Failure> {
    let b = EmbeddedBroker::start(a.port, a.v4_port, settings.config.mqtt.max_message_size)
        .map_err(|e| Failure::connect(error_chain(&e)))?;
    if b.moved {
        println!(
            "port {} is taken (another broker?): the embedded broker uses {} instead",
            a.port,
            b.v5.port()
        );
    }
    println!("embedded broker: MQTT 5 at {} (mqttcal nodes)", b.url());
    println!(
        "                 MQTT 3.1.1 at {} (report-style peers)",
        b.v4_url()
    );
    println!("export MQTTCAL_BROKER={}", b.url());
    Ok(b)
}

pub(crate) async fn broker(a: BrokerArgs, settings: Settings) -> Result<(), Failure> {
    start(&a, &settings)?;
    shutdown_signal().await;
    Ok(())
}

/// The reference nodes of the simulated lab.
const NODES: &[&str] = &[
    "logd", "testnode", "datad", "labd", "cald", "tpld", "ctrld", "webd",
];

pub(crate) async fn lab(a: LabArgs, settings: Settings) -> Result<(), Failure> {
    let b = start(&a.broker, &settings)?;
    let mut cfg = MqttConfig {
        max_message_size: settings.config.mqtt.max_message_size,
        ..MqttConfig::default()
    };
    cfg.apply_url(&b.url())
        .map_err(|e| Failure::usage(e.to_string()))?;
    let transport = MqttTransport::new(cfg);
    let args = super::simlab::SimLabArgs::free(a.time_factor);
    let (sim, _) = super::simlab::start(&args).await?;
    println!(
        "simulated instruments: 3458A {}, scanners {} and {}, sensor {}; a 34470A-style SCPI DMM (not used by labd here) {}",
        sim.hp3458.resource(),
        sim.scanner_x.resource(),
        sim.scanner_ref.resource(),
        sim.env.resource(),
        sim.scpi_dmm.resource()
    );
    let prefix = settings.config.prefix.clone();
    let datad_config = mqttcal_nodes::datad::DatadConfig {
        database: a.database.clone(),
        ..Default::default()
    };
    // One database for both, opened once.
    let store = super::run::open_store(&a.database).await?;
    // logd first, so its logbook sees the others arrive.
    let key_path = a
        .checkpoint_key
        .clone()
        .unwrap_or_else(|| default_key_path(&a.database));
    let key = mqttcal_nodes::logd::CheckpointKey::load_or_create(&key_path)
        .map_err(|e| Failure::resource(error_chain(&e)))?;
    println!(
        "logd signs a checkpoint every 100 entries with key {} in {} (keep it apart from the database)",
        key.id(),
        key_path.display()
    );
    let signer = mqttcal_nodes::logd::Signer::new(key, 100);
    let logd = mqttcal_nodes::logd::node(NODES[0], store.clone(), Some(signer));
    let logbook = store.clone();
    let datad = mqttcal_nodes::datad::node(NODES[2], &datad_config, store);
    println!("datad stores readings, logd the logbook, in {}", a.database);
    println!(
        "labd keeps each reading in {} until the broker has it",
        default_outbox(&a.database).display()
    );
    let (web, web_url, operator) =
        super::demo::webd(NODES[7], &default_web_dir(&a.database), a.web_port).await?;
    // datad before labd: the embedded broker keeps no session across its restarts, so
    // the readings labd's outbox sends again at its start need datad's subscription there.
    let builders = [
        logd,
        mqttcal_nodes::base::node(NODES[1]),
        datad,
        mqttcal_nodes::labd::node(
            NODES[3],
            mqttcal_nodes::labd::LabdConfig {
                outbox: Some(mqttcal_core::outbox::OutboxConfig::new(default_outbox(
                    &a.database,
                ))),
                ..mqttcal_nodes::labd::LabdConfig::for_sim_lab(&sim)
            },
        ),
        mqttcal_nodes::cald::node(
            NODES[4],
            mqttcal_nodes::cald::CaldConfig {
                instruments: [(super::demo::DMM.0.to_owned(), super::demo::DMM.1.to_owned())]
                    .into(),
                ..Default::default()
            },
        ),
        mqttcal_nodes::tpld::node(NODES[5], mqttcal_nodes::tpld::TpldConfig::default())
            .map_err(|e| Failure::resource(format!("tpld's templates: {e}")))?,
        mqttcal_nodes::ctrld::node(NODES[6], super::demo::ctrld_config())
            .map_err(|e| Failure::usage(e.to_string()))?,
        web,
    ];
    let mut handles: Vec<NodeHandle> = Vec::new();
    for builder in builders {
        let node = builder.prefix(prefix.clone()).build();
        handles.push(node.start(&transport).await.map_err(connect_failure)?);
    }
    println!("nodes: {}", NODES.join(", "));
    let formats = if cfg!(feature = "pdf") {
        "DCC, HTML, PDF"
    } else {
        "DCC, HTML; PDF with a build `--features pdf`"
    };
    println!(
        "tpld renders certificates ({formats}) and does not sign them here: `mqttcal run tpld` with a `sign` section (key, certificate; xmlsec1 installed) signs issued DCCs"
    );
    println!(
        "ctrld is the entry point: `call ctrld status`; `call ctrld call` forwards as its policy allows (here every `mqttcal` command is an operator)"
    );
    println!(
        "webd: open {web_url} and log in as operator, password {operator} (a self-signed certificate: the browser warns once); people: mqttcal users --file {} add NAME --role operator",
        default_web_dir(&a.database).join("users").display()
    );
    if let Some(h) = handles.last() {
        super::demo::seed(h.context(), &sim).await?;
        println!(
            "demo reference {} registered with its calibration history, and the DMM as {}",
            super::demo::REFERENCE,
            super::demo::DMM.1
        );
    }
    println!("in another terminal, first run:");
    // The nodes' prefix too: commands under another prefix would find none of them.
    match prefix.as_str() {
        "" => println!("    export MQTTCAL_BROKER={}", b.url()),
        p => println!(
            "    export MQTTCAL_BROKER={} MQTTCAL_PREFIX={}",
            b.url(),
            shell_word(p)
        ),
    }
    println!("then try:");
    println!("    mqttcal map '*'");
    println!("    mqttcal call labd measure '{{\"src\": \"Z1\", \"repetitions\": 3}}'");
    println!("    mqttcal watch                 # live traffic until Ctrl-C (one more terminal)");
    println!(
        "    mqttcal call cald checkin '{{\"id\": \"Z1\", \"customer\": \"ACME\", \"manufacturer\": \"Fluke\", \"model\": \"732B\", \"serial\": \"123\", \"nominal_value\": 10}}'"
    );
    println!(
        "    mqttcal call cald start '{{\"item\": \"Z1\", \"procedure\": {}}}'",
        super::demo::procedure()
    );
    println!("(`mqttcal` is `cargo run --release -p mqttcal-cli --`, or installed with `cargo install --path mqttcal-cli`; `--port` fixes the broker's port)");
    match a.seconds {
        Some(s) if s.is_finite() && s >= 0.0 => {
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs_f64(s)) => {}
                _ = shutdown_signal() => {}
            }
        }
        Some(_) => return Err(Failure::usage("--seconds must be a non-negative number")),
        None => shutdown_signal().await,
    }
    // In reverse: logd last, once its logbook has recorded the others leaving (their
    // `bye` reaches it through the broker; up to 2 s).
    let since = mqttcal_core::clock::Timestamp::now().as_secs_f64() - 1.0;
    let logd = handles.remove(0);
    let others = handles.len();
    for h in handles.into_iter().rev() {
        h.stop()
            .await
            .map_err(|e| Failure::reply(error_chain(&e)))?;
    }
    let until = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while std::time::Instant::now() < until {
        let query = mqttcal_store::LogQuery {
            kind: Some("left".into()),
            since: Some(since),
            ..Default::default()
        };
        let left = logbook
            .search_log(&query)
            .await
            .map_or(0, |rows| rows.len());
        if left >= others {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    logd.stop()
        .await
        .map_err(|e| Failure::reply(error_chain(&e)))?;
    println!("lab stopped");
    Ok(())
}

/// `word` as one shell word: as it is when plain, else in single quotes.
fn shell_word(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/-_.:+".contains(c))
    {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}
