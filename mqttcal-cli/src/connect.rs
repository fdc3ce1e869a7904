//! Merging flags, environment and configuration file into connection settings.

use mqttcal_core::config::Config;
use mqttcal_core::topics::Layout;
use mqttcal_core::transport::MqttTransport;
use mqttcal_core::{error_chain, Client, NodeBuilder, RunError};

use super::{ConnectionArgs, Failure};

/// The merged configuration of one invocation.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) config: Config,
    pub(crate) file: Option<std::path::PathBuf>,
}

impl Settings {
    /// Defaults, then the file, then the environment, then the flags.
    pub(crate) fn load(args: &ConnectionArgs) -> Result<Self, Failure> {
        let mut config = match &args.config {
            Some(path) => Config::from_file(path).map_err(|e| Failure::usage(error_chain(&e)))?,
            None => Config::default(),
        };
        config
            .apply_process_env()
            .map_err(|e| Failure::usage(error_chain(&e)))?;
        let m = &mut config.mqtt;
        if let Some(url) = &args.broker {
            m.apply_url(url)
                .map_err(|e| Failure::usage(e.to_string()))?;
        }
        if let Some(v) = &args.username {
            m.username = Some(v.clone());
        }
        if let Some(v) = &args.password {
            m.password = Some(v.clone());
        }
        if let Some(v) = &args.ca_cert {
            m.ca_cert = Some(v.clone());
        }
        if let Some(v) = &args.prefix {
            config.prefix = v.clone();
        }
        if let Some(v) = args.layout {
            config.layout = v;
        }
        Ok(Self {
            config,
            file: args.config.clone(),
        })
    }

    /// The transport of a node: the first connection may take 10 s (a broker starting
    /// alongside), later losses are retried for ever.
    pub(crate) fn transport(&self) -> MqttTransport {
        MqttTransport::new(self.config.mqtt.clone())
    }

    /// The transport of a one-shot command: one attempt of at most 1 s, so a wrong
    /// address fails at once and [`Settings::unreachable`] can say what is there.
    pub(crate) fn quick_transport(&self) -> MqttTransport {
        self.transport()
            .connect_timeout(std::time::Duration::ZERO)
            .attempt_timeout(QUICK_ATTEMPT)
    }

    /// A connection failure of a one-shot command, with what listens at the address.
    pub(crate) async fn unreachable(&self, e: &mqttcal_core::transport::TransportError) -> Failure {
        use mqttcal_core::transport::probe::{probe, Found};
        use mqttcal_core::transport::TransportError;
        let TransportError::Unreachable { .. } = e else {
            return Failure::connect(error_chain(e));
        };
        let m = &self.config.mqtt;
        let tls = m.uses_tls();
        let found = probe(&m.hostname, m.port, tls).await;
        let what = match found {
            // The address answers MQTT 5 now: the first look failed for its own reason.
            Found::Mqtt5 => error_chain(e),
            other => other.explain(&m.hostname, m.port, tls),
        };
        Failure::connect(format!("cannot connect to {}: {what}", m.url()))
    }

    /// Connects as a client named `cli-<host>-<pid>`, or, in the addressed layout, named
    /// after its login (the broker's ACL binds the name to it). One attempt: a wrong
    /// address fails fast, saying what is there.
    pub(crate) async fn client(&self) -> Result<Client, Failure> {
        match self.client_on(&self.quick_transport()).await {
            Err((Some(e), _)) => Err(self.unreachable(&e).await),
            Err((None, f)) => Err(f),
            Ok(c) => Ok(c),
        }
    }

    /// Like [`Settings::client`], also reading `topics` on the same connection (one login,
    /// one session): what arrives there comes out of the receiver (the newest are dropped
    /// when 1024 wait).
    pub(crate) async fn client_listening(
        &self,
        topics: &[&str],
    ) -> Result<
        (
            Client,
            tokio::sync::mpsc::Receiver<mqttcal_core::envelope::Envelope>,
        ),
        Failure,
    > {
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        let listen = |mut builder: NodeBuilder| {
            for topic in topics {
                let tx = tx.clone();
                builder = builder.on_topic(topic, move |env, _ctx| {
                    let _ = tx.try_send(env);
                    async {}
                });
            }
            builder
        };
        match self.client_built(&self.quick_transport(), listen).await {
            Err((Some(e), _)) => Err(self.unreachable(&e).await),
            Err((None, f)) => Err(f),
            Ok(c) => Ok((c, rx)),
        }
    }

    /// Like [`Settings::client`], waiting for the broker as a node does (up to 10 s).
    pub(crate) async fn patient_client(&self) -> Result<Client, Failure> {
        self.client_on(&self.transport()).await.map_err(|(_, f)| f)
    }

    /// The connection error, if the failure is one, and the failure.
    async fn client_on(
        &self,
        transport: &MqttTransport,
    ) -> Result<Client, (Option<mqttcal_core::transport::TransportError>, Failure)> {
        self.client_built(transport, |b| b).await
    }

    /// Connects a client whose builder `shape` finishes.
    async fn client_built(
        &self,
        transport: &MqttTransport,
        shape: impl FnOnce(NodeBuilder) -> NodeBuilder,
    ) -> Result<Client, (Option<mqttcal_core::transport::TransportError>, Failure)> {
        let name =
            match (self.config.layout, &self.config.mqtt.username) {
                (Layout::Addressed, Some(user)) => user.clone(),
                (Layout::Addressed, None) => return Err((
                    None,
                    Failure::usage(
                        "the addressed layout needs a login: give --username (or MQTTCAL_USERNAME)",
                    ),
                )),
                (Layout::Shared, _) => {
                    let host = gethostname::gethostname()
                        .to_string_lossy()
                        .replace(['/', '+', '#', '*'], "_");
                    format!("cli-{host}-{}", std::process::id())
                }
            };
        let builder = shape(
            NodeBuilder::new(name)
                .prefix(self.config.prefix.clone())
                .layout(self.config.layout)
                .max_message_size(self.config.mqtt.max_message_size),
        );
        Client::connect_as(transport, builder)
            .await
            .map_err(|e| match e {
                RunError::Connect(
                    t @ mqttcal_core::transport::TransportError::Unreachable { .. },
                ) => {
                    let f = Failure::connect(error_chain(&t));
                    (Some(t), f)
                }
                other => (None, connect_failure(other)),
            })
    }
}

/// How long one connection attempt of a one-shot command may take.
const QUICK_ATTEMPT: std::time::Duration = std::time::Duration::from_millis(1000);

pub(crate) fn connect_failure(e: RunError) -> Failure {
    match e {
        // Settings that cannot work (a certificate file, a node named unlike its login):
        // a configuration error (exit 2), not a broker that is away (exit 3), so a
        // supervisor does not restart it for ever as if the broker would come back.
        RunError::Connect(mqttcal_core::transport::TransportError::Config { .. }) => {
            Failure::usage(error_chain(&e))
        }
        RunError::Connect(_) => Failure::connect(error_chain(&e)),
        // An outbox file that cannot be used (exit 4, as a database that cannot be opened).
        RunError::Outbox { .. } => Failure::resource(error_chain(&e)),
        other => Failure::reply(error_chain(&other)),
    }
}
