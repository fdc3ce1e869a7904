//! `run <node>`: a reference node until SIGTERM, Ctrl-C or a `stop` message.

use clap::{Args, ValueEnum};
use mqttcal_core::NodeBuilder;

use super::connect::{connect_failure, Settings};
use super::Failure;

/// The reference nodes that `run` knows.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Kind {
    /// A bare node with `ping`, `map` and `stop` (the report's testnode)
    Base,
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

fn builder(kind: Kind, name: &str) -> NodeBuilder {
    match kind {
        Kind::Base => crate::base::node(name),
    }
}

pub(crate) async fn run(a: RunArgs, settings: Settings) -> Result<(), Failure> {
    let name = a
        .name
        .or_else(|| settings.config.servicename.clone())
        .unwrap_or_else(|| format!("{:?}", a.kind).to_lowercase());
    let node = builder(a.kind, &name)
        .prefix(settings.config.prefix.clone())
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
