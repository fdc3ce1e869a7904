//! Node configuration: the report's YAML keys, environment overrides and broker URLs.
//!
//! ```yaml
//! servicename: thermo
//! mqtt:
//!   hostname: 127.0.0.1
//!   port: 8883
//!   username: lab
//!   password: secret
//!   ca-cert: /etc/mqttcal/ca.pem
//! ```
//!
//! Precedence: command-line flags, then the environment (`MQTTCAL_BROKER`,
//! `MQTTCAL_USERNAME`, `MQTTCAL_PASSWORD`, `MQTTCAL_CA_CERT`, `MQTTCAL_PREFIX`), then the
//! file, then the defaults.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::envelope::DEFAULT_MAX_MESSAGE_SIZE;

/// A whole configuration file. Sections other than `servicename`, `prefix` and `mqtt` are
/// kept in [`Config::sections`] for the node that reads them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Config {
    /// The node's name (its `from`).
    #[serde(default)]
    pub servicename: Option<String>,
    /// Topic prefix shared by the nodes of one lab (default empty).
    #[serde(default)]
    pub prefix: String,
    /// `shared` (the report's topics, default) or `addressed` (production mode: the
    /// sender's login in every topic, for the broker's ACL; docs/deploying.md).
    #[serde(default)]
    pub layout: crate::topics::Layout,
    /// In the addressed layout, the logins that may stop the node (default `[admin]`).
    #[serde(default)]
    pub stop_from: Option<Vec<String>>,
    /// Broker connection.
    #[serde(default)]
    pub mqtt: MqttConfig,
    /// Every other top-level key, e.g. a node's own settings.
    #[serde(flatten)]
    pub sections: Map<String, Value>,
}

/// How to reach the broker (the report's `mqtt` section, plus our keys).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct MqttConfig {
    /// Broker host name or address.
    pub hostname: String,
    /// Broker port.
    pub port: u16,
    /// User name.
    pub username: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// CA certificate (PEM) that signs the broker's certificate; setting it turns TLS on.
    pub ca_cert: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    pub client_cert: Option<PathBuf>,
    /// Client private key (PEM) for mutual TLS.
    pub client_key: Option<PathBuf>,
    /// Use TLS even without `ca-cert` (trusting the system's roots).
    pub tls: bool,
    /// Verify the broker's certificate and host name (default true). `false` logs a warning.
    pub secure: bool,
    /// Keep-alive interval in seconds.
    pub keepalive: u64,
    /// Largest message accepted or sent, in bytes.
    pub max_message_size: usize,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            hostname: "127.0.0.1".into(),
            port: 1883,
            username: None,
            password: None,
            ca_cert: None,
            client_cert: None,
            client_key: None,
            tls: false,
            secure: true,
            keepalive: 30,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        }
    }
}

/// A configuration that could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file `{path}`")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A key has a bad value, or the YAML is malformed.
    #[error("config file `{path}`: key `{key}`: {problem}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key, as a dotted path (`.` for the whole file).
        key: String,
        /// What was expected, and where.
        problem: String,
    },
    /// A broker URL is malformed.
    #[error("bad broker URL `{url}`: {problem}")]
    BadUrl {
        /// The URL.
        url: String,
        /// What is wrong.
        problem: String,
    },
}

impl Config {
    /// Reads a YAML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_yaml(&text, path)
    }

    /// Parses YAML text; `path` names it in errors.
    pub fn from_yaml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            ConfigError::Invalid {
                path: path.to_owned(),
                key,
                problem: e.into_inner().to_string(),
            }
        })
    }

    /// Applies the `MQTTCAL_*` environment variables found by `get`.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(url) = get("MQTTCAL_BROKER") {
            self.mqtt.apply_url(&url)?;
        }
        if let Some(v) = get("MQTTCAL_USERNAME") {
            self.mqtt.username = Some(v);
        }
        if let Some(v) = get("MQTTCAL_PASSWORD") {
            self.mqtt.password = Some(v);
        }
        if let Some(v) = get("MQTTCAL_CA_CERT") {
            self.mqtt.ca_cert = Some(v.into());
        }
        if let Some(v) = get("MQTTCAL_PREFIX") {
            self.prefix = v;
        }
        if let Some(v) = get("MQTTCAL_LAYOUT") {
            self.layout = v.parse().map_err(|problem| ConfigError::Invalid {
                path: "MQTTCAL_LAYOUT".into(),
                key: "layout".into(),
                problem,
            })?;
        }
        Ok(())
    }

    /// Applies the process environment.
    pub fn apply_process_env(&mut self) -> Result<(), ConfigError> {
        self.apply_env(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }
}

impl MqttConfig {
    /// Whether the connection uses TLS.
    pub fn uses_tls(&self) -> bool {
        self.tls || self.ca_cert.is_some()
    }

    /// Sets host, port and TLS from `mqtt://host[:port]` or `mqtts://host[:port]`.
    pub fn apply_url(&mut self, url: &str) -> Result<(), ConfigError> {
        let bad = |problem: &str| ConfigError::BadUrl {
            url: url.to_owned(),
            problem: problem.to_owned(),
        };
        let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("mqtt://") {
            (false, r)
        } else {
            return Err(bad("expected mqtt://host[:port] or mqtts://host[:port]"));
        };
        let rest = rest.trim_end_matches('/');
        let port_of = |p: &str| {
            p.parse::<u16>()
                .map_err(|_| bad("the port is not a number from 0 to 65535"))
        };
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed `[`"))?;
            match after.strip_prefix(':') {
                Some(p) => (h, Some(port_of(p)?)),
                None if after.is_empty() => (h, None),
                None => return Err(bad("unexpected text after `]`")),
            }
        } else {
            match rest.split_once(':') {
                Some((h, p)) => (h, Some(port_of(p)?)),
                None => (rest, None),
            }
        };
        if host.is_empty() {
            return Err(bad("the host is missing"));
        }
        self.hostname = host.to_owned();
        self.port = port.unwrap_or(if tls { 8883 } else { 1883 });
        self.tls = tls;
        Ok(())
    }

    /// The broker as a URL.
    pub fn url(&self) -> String {
        let scheme = if self.uses_tls() { "mqtts" } else { "mqtt" };
        format!("{scheme}://{}:{}", self.hostname, self.port)
    }
}

#[cfg(test)]
mod tests;
