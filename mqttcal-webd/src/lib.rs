//! # mqttcal-webd
//!
//! webd, the lab's browser interface: an HTTPS server that logs people in (argon2 password
//! hashes, sessions in `Secure`, `HttpOnly`, `SameSite=Strict` cookies, a CSRF token on
//! every state-changing request, failed logins throttled) and makes every call through
//! ctrld in the person's name and role, so ctrld's policy decides and its logbook entries
//! name them. It reads `announce`, `meas` and `progress` and streams them to the pages
//! (server-sent events); it publishes nothing itself.
//!
//! The pages are rendered on the server with small scripts of our own: nodes and their
//! status (live), each node's capabilities as forms generated from their JSON Schemas, and
//! the live readings. docs/ui.md shows them.
//!
//! ```no_run
//! use mqttcal_core::transport::MqttTransport;
//! use mqttcal_webd::WebdConfig;
//! # async fn run(transport: MqttTransport) -> Result<(), Box<dyn std::error::Error>> {
//! // People: `mqttcal users add ada --role operator` writes the users file.
//! let config = WebdConfig::default(); // https://127.0.0.1:8443, a self-signed certificate
//! let (node, url) = mqttcal_webd::node("webd", config).await?;
//! println!("open {url}");
//! node.build().run(&transport).await?;
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;

mod http;
mod live;
mod pages;
pub mod sessions;
mod stall;
pub mod tls;
pub mod users;

pub use users::{write_private, Users, UsersError};

/// webd's configuration (the `webd` section).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct WebdConfig {
    /// Where to listen (default `127.0.0.1:8443`; port 0 takes a free one).
    pub listen: SocketAddr,
    /// The server's certificate chain (PEM); with `tls_key`. Absent: a self-signed pair
    /// made once in `state_dir`.
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// Where webd keeps what it makes (the self-signed pair); default `webd-state`.
    pub state_dir: PathBuf,
    /// The names (hosts, addresses) a self-signed certificate is made for.
    pub hostnames: Vec<String>,
    /// The users file (`name:role:hash` lines, written by `mqttcal users add`); default
    /// `webd-users`.
    pub users_file: PathBuf,
    /// The ctrld every call goes through (default `ctrld`).
    pub ctrld: String,
    /// Serve plain HTTP, without TLS: only behind a TLS proxy, never on an open network.
    pub insecure_http: bool,
    /// The address of a proxy in front of webd whose `X-Forwarded-For` names the client
    /// (for the login throttle); none by default.
    pub trusted_proxy: Option<std::net::IpAddr>,
}

impl Default for WebdConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            tls_cert: None,
            tls_key: None,
            state_dir: PathBuf::from("webd-state"),
            hostnames: vec!["localhost".into(), "127.0.0.1".into()],
            users_file: PathBuf::from("webd-users"),
            ctrld: "ctrld".into(),
            insecure_http: false,
            trusted_proxy: None,
        }
    }
}

/// Why webd cannot start.
#[derive(Debug, thiserror::Error)]
pub enum WebdError {
    /// TLS cannot be set up.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The users file cannot be read.
    #[error(transparent)]
    Users(#[from] UsersError),
    /// The address cannot be listened on.
    #[error("webd cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The configuration does not hold together.
    #[error("webd: {0}")]
    Config(String),
}

/// webd as a node named `name` (its broker login, which ctrld's policy names among the
/// gateways), listening already; returns it with the URL to open.
pub async fn node(
    name: &str,
    config: WebdConfig,
) -> Result<(mqttcal_core::NodeBuilder, String), WebdError> {
    let tls = match (&config.tls_cert, &config.tls_key, config.insecure_http) {
        (_, _, true) => {
            tracing::warn!("webd serves plain HTTP (insecure_http): put it behind a TLS proxy");
            None
        }
        (Some(cert), Some(key), false) => Some(tls::server_config(cert, key)?),
        (None, None, false) => {
            let (cert, key) = tls::self_signed(&config.state_dir, &config.hostnames)?;
            Some(tls::server_config(&cert, &key)?)
        }
        _ => {
            return Err(WebdError::Config(
                "give both `tls_cert` and `tls_key`, or neither (a self-signed pair)".into(),
            ))
        }
    };
    let users = Users::load(&config.users_file)?;
    if users.all().is_empty() {
        tracing::warn!(
            file = %config.users_file.display(),
            "webd has no users yet: add one with `mqttcal users add NAME --role operator`"
        );
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| WebdError::Listen {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| WebdError::Listen {
        addr: config.listen,
        source,
    })?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let host = match addr.ip() {
        ip if ip.is_unspecified() => "localhost".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let url = format!("{scheme}://{host}:{}/", addr.port());
    let ctrld = config.ctrld.clone();
    let hub = live::Hub::new();
    let state = http::State::new(config, users, hub.clone())?;
    let builder = hub
        .listen(mqttcal_core::NodeBuilder::new(name))
        .background(move |ctx| http::serve(listener, tls, state, ctx))
        .background(move |ctx| check_gateway(ctx, ctrld));
    Ok((builder, url))
}

/// Says in the log, once ctrld has had time to start, when ctrld does not answer or does not
/// count this webd among its gateways: every page would be refused.
async fn check_gateway(ctx: mqttcal_core::Context, ctrld: String) {
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let probe = serde_json::json!({"user": ctx.name(), "role": "-"});
    let asked = ctx
        .request_timeout(&ctrld, "nodes", probe, std::time::Duration::from_secs(5))
        .await;
    match asked {
        Err(mqttcal_core::CallError::Remote { error, .. })
            if error.message.contains("only a gateway") =>
        {
            tracing::warn!(
                "`{}` is not one of {ctrld}'s gateways: every page will be refused; add it to the policy's `gateways`, or run webd under a name that is",
                ctx.name()
            );
        }
        Err(mqttcal_core::CallError::Timeout { .. }) => tracing::warn!(
            "{ctrld} does not answer: every page needs it (is it running, on this broker?)"
        ),
        _ => {}
    }
}
