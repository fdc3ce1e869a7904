//! The `mqttcal` command: runs the reference nodes and a whole simulated lab, calls
//! capabilities, watches traffic.
//!
//! Exit codes: 0 success; 1 an error reply, a reply reporting a failed check (`"ok": false`,
//! as logd's `verify` does for a broken chain), a timeout or no reply; 2 bad usage or a bad
//! configuration; 3 the broker cannot be reached or refused the connection; 4 a resource the
//! node needs (its database, a key file) cannot be opened.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

#[cfg(feature = "broker")]
mod broker;
mod call;
mod connect;
#[cfg(feature = "broker")]
mod demo;
mod explain;
mod follow;
mod import;
mod map_table;
mod progress;
mod run;
mod simlab;
mod stop;
mod terminal;
mod users;
mod watch;

/// Command-line interface of mqttcal.
#[derive(Debug, Parser)]
#[command(
    name = "mqttcal",
    version,
    about = "MQTT calibration service: nodes, calls, traffic"
)]
struct Cli {
    #[command(flatten)]
    conn: ConnectionArgs,
    #[command(subcommand)]
    command: Command,
}

/// How to reach the broker; flags override the environment, which overrides the file.
#[derive(Debug, Args, Clone, Default)]
struct ConnectionArgs {
    /// Broker URL: mqtt://host:port or mqtts://host:port [env: MQTTCAL_BROKER]
    #[arg(long, global = true)]
    broker: Option<String>,
    /// User name [env: MQTTCAL_USERNAME]
    #[arg(long, global = true)]
    username: Option<String>,
    /// Password [env: MQTTCAL_PASSWORD]
    #[arg(long, global = true)]
    password: Option<String>,
    /// CA certificate (PEM) of the broker; turns TLS on [env: MQTTCAL_CA_CERT]
    #[arg(long, global = true)]
    ca_cert: Option<PathBuf>,
    /// YAML configuration file (the report's keys: servicename, mqtt.hostname, ...)
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Topic prefix shared by the nodes of one lab [env: MQTTCAL_PREFIX]
    #[arg(long, global = true)]
    prefix: Option<String>,
    /// Topic layout: `shared` (the report's) or `addressed` (production mode: every
    /// connection logs in under the name its topics carry) [env: MQTTCAL_LAYOUT]
    #[arg(long, global = true)]
    layout: Option<mqttcal_core::topics::Layout>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a reference node until it is stopped (SIGTERM, Ctrl-C or a `stop` message)
    Run(run::RunArgs),
    /// Call a capability of one node, or of every node with `*`; prints each reply as a JSON line
    Call(call::CallArgs),
    /// List the capabilities of one node or of every node: a table on a terminal, JSON
    /// lines when piped (or with `--json`)
    Map(call::MapArgs),
    /// Check whether one node or every node is operating
    Ping(call::TargetArgs),
    /// Stop a node and wait for its `bye` (or every node with `*`, the report's stop on
    /// `system`)
    Stop(stop::StopArgs),
    /// Print live traffic, one message per line, until Ctrl-C (run it in another terminal)
    Watch(watch::WatchArgs),
    /// Follow a calibration job with a progress bar; prints how it ended (exit 1 unless done)
    Follow(follow::FollowArgs),
    /// Import an equipment register or calibration histories (CSV or JSON) through datad
    Import(import::ImportArgs),
    /// Run the simulated instruments of a DC-voltage lab on TCP ports
    SimLab(simlab::SimLabArgs),
    /// Manage webd's users (the people who log in to the browser interface)
    Users(users::UsersArgs),
    /// Print the broker's ACL for production mode, generated from ctrld's policy (the
    /// `ctrld` section of --config, else the built-in roles)
    Acl(run::AclArgs),
    /// Run the embedded MQTT broker until Ctrl-C or SIGTERM
    #[cfg(feature = "broker")]
    Broker(broker::BrokerArgs),
    /// Run a whole simulated lab: the embedded broker plus the reference nodes
    #[cfg(feature = "broker")]
    Lab(broker::LabArgs),
}

/// The connection flags, hidden from the help of the commands that do not connect to a
/// broker (the lab and the broker run their own; sim-lab runs instruments only). The flags
/// are global, so they are still accepted there (a shell that exported the lab's
/// `MQTTCAL_BROKER` runs a second lab unchanged).
const NOT_CONNECTING: &[(&str, &[&str])] = &[
    (
        "lab",
        &["broker", "username", "password", "ca_cert", "layout"],
    ),
    (
        "broker",
        &[
            "broker", "username", "password", "ca_cert", "layout", "prefix",
        ],
    ),
    (
        "sim-lab",
        &[
            "broker", "username", "password", "ca_cert", "layout", "prefix", "config",
        ],
    ),
];

/// The command line, with each subcommand's help showing the flags that apply to it.
fn command() -> clap::Command {
    let mut cmd = Cli::command();
    for (sub, flags) in NOT_CONNECTING {
        if cmd.find_subcommand(sub).is_none() {
            continue;
        }
        // A hidden copy in the subcommand stands in for the global flag there.
        let copies: Vec<clap::Arg> = cmd
            .get_arguments()
            .filter(|a| flags.contains(&a.get_id().as_str()))
            .map(|a| a.clone().global(false).hide(true))
            .collect();
        cmd = cmd.mut_subcommand(*sub, |s| s.args(copies));
    }
    cmd
}

/// A failure of a command, with its exit code.
#[derive(Debug)]
pub(crate) struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    pub(crate) fn reply(message: impl Into<String>) -> Self {
        Self {
            code: 1,
            message: message.into(),
        }
    }
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self {
            code: 2,
            message: message.into(),
        }
    }
    pub(crate) fn connect(message: impl Into<String>) -> Self {
        Self {
            code: 3,
            message: message.into(),
        }
    }
    /// A resource the node needs (its database, a key file) cannot be opened.
    pub(crate) fn resource(message: impl Into<String>) -> Self {
        Self {
            code: 4,
            message: message.into(),
        }
    }
    /// A failure already reported on standard output (e.g. an error reply).
    pub(crate) fn silent(code: u8) -> Self {
        Self {
            code,
            message: String::new(),
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::from_arg_matches(&command().get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let default_level = match cli.command {
        Command::Run(_) => "info,rumqttd=off",
        #[cfg(feature = "broker")]
        Command::Broker(_) | Command::Lab(_) => "info,rumqttd=off",
        Command::SimLab(_) => "info",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    // Colours only on a terminal (and not with NO_COLOR): a log file or the journal gets
    // plain text.
    let colour = {
        use std::io::IsTerminal;
        std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(dispatch(cli));
    // Work that cannot be interrupted (a document being typeset) must not keep a stopped
    // node's process alive: what is still running after 2 s is abandoned.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if !f.message.is_empty() {
                eprintln!("error: {}", f.message);
            }
            ExitCode::from(f.code)
        }
    }
}

async fn dispatch(cli: Cli) -> Result<(), Failure> {
    let settings = connect::Settings::load(&cli.conn)?;
    match cli.command {
        Command::Run(a) => run::run(a, settings).await,
        Command::Call(a) => call::call(a, settings).await,
        Command::Map(a) => call::map(a, settings).await,
        Command::Ping(a) => call::builtin("ping", a, settings).await,
        Command::Stop(a) => stop::stop(a, settings).await,
        Command::Watch(a) => watch::watch(a, settings).await,
        Command::Follow(a) => follow::follow(a, settings).await,
        Command::Import(a) => import::import(a, settings).await,
        Command::SimLab(a) => simlab::sim_lab(a).await,
        Command::Acl(a) => run::acl(a, &settings),
        Command::Users(a) => users::users(a, &settings),
        #[cfg(feature = "broker")]
        Command::Broker(a) => broker::broker(a, settings).await,
        #[cfg(feature = "broker")]
        Command::Lab(a) => broker::lab(a, settings).await,
    }
}
