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

    pub(crate) fn transport(&self) -> MqttTransport {
        MqttTransport::new(self.config.mqtt.clone())
    }

    /// Connects as a client named `cli-<host>-<pid>`, or, in the addressed layout, named
    /// after its login (the broker's ACL binds the name to it).
    pub(crate) async fn client(&self) -> Result<Client, Failure> {
        let name = match (self.config.layout, &self.config.mqtt.username) {
            (Layout::Addressed, Some(user)) => user.clone(),
            (Layout::Addressed, None) => {
                return Err(Failure::usage(
                    "the addressed layout needs a login: give --username (or MQTTCAL_USERNAME)",
                ))
            }
            (Layout::Shared, _) => {
                let host = gethostname::gethostname()
                    .to_string_lossy()
                    .replace(['/', '+', '#', '*'], "_");
                format!("cli-{host}-{}", std::process::id())
            }
        };
        let builder = NodeBuilder::new(name)
            .prefix(self.config.prefix.clone())
            .layout(self.config.layout)
            .max_message_size(self.config.mqtt.max_message_size);
        Client::connect_as(&self.transport(), builder)
            .await
            .map_err(connect_failure)
    }
}

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
