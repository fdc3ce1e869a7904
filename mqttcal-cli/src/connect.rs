//! Merging flags, environment and configuration file into connection settings.

use mqttcal_core::config::Config;
use mqttcal_core::transport::MqttTransport;
use mqttcal_core::{error_chain, Client, RunError};

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
        Ok(Self {
            config,
            file: args.config.clone(),
        })
    }

    pub(crate) fn transport(&self) -> MqttTransport {
        MqttTransport::new(self.config.mqtt.clone())
    }

    /// Connects as a client named `cli-<host>-<pid>`.
    pub(crate) async fn client(&self) -> Result<Client, Failure> {
        let host = gethostname::gethostname()
            .to_string_lossy()
            .replace(['/', '+', '#'], "_");
        let name = format!("cli-{host}-{}", std::process::id());
        Client::connect(&self.transport(), &name, &self.config.prefix)
            .await
            .map_err(connect_failure)
    }
}

pub(crate) fn connect_failure(e: RunError) -> Failure {
    match e {
        RunError::Connect(_) => Failure::connect(error_chain(&e)),
        other => Failure::reply(error_chain(&other)),
    }
}
