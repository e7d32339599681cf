//! How every command that talks to a broker is told to authenticate.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use phare_common::tls::MqttAuth;
use phare_provisioning::ca::Tool;
use phare_provisioning::connect::Endpoint;
use phare_provisioning::keys::Keyring;

/// One broker of a fleet, for commands that watch the whole fleet.
#[derive(Args, Debug, Clone)]
pub struct FleetBroker {
    /// Broker URL (mqtt:// or mqtts://host:port).
    #[arg(long)]
    pub broker: String,
    /// The fleet name (default: the keyring's).
    #[arg(long)]
    pub fleet: Option<String>,
    /// The keyring: the fleet's name and TLS files.
    #[arg(long, default_value = "keys")]
    pub keyring: PathBuf,
    #[command(flatten)]
    pub auth: BrokerAuth,
}

impl FleetBroker {
    /// The broker, as `tool` ([`BrokerAuth::endpoint`]).
    pub fn endpoint(&self, tool: Tool) -> Endpoint {
        self.auth.endpoint_for(&self.broker, &self.keyring, tool)
    }

    /// `--fleet`, else the fleet of the keyring's root.
    pub fn fleet_name(&self) -> anyhow::Result<String> {
        match &self.fleet {
            Some(fleet) => Ok(fleet.clone()),
            None => Ok(Keyring::open(&self.keyring)
                .context("give --fleet, or --keyring to read it from")?
                .root()
                .fleet
                .clone()),
        }
    }
}

/// Broker credentials. For an mqtts:// broker, without --ca, --cert or
/// --key, the keyring's CA (tls/ca.pem) and operator certificate
/// (tls/operator.pem, tls/operator.key; `phare pop collect`:
/// tls/collector.pem, tls/collector.key) are used when present.
#[derive(Args, Debug, Clone)]
pub struct BrokerAuth {
    /// CA certificate (PEM) that an mqtts:// broker's certificate must
    /// chain to [default: <keyring>/tls/ca.pem].
    #[arg(long = "ca", value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS [default:
    /// <keyring>/tls/operator.pem].
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM, mode 0600) [default:
    /// <keyring>/tls/operator.key].
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Username, for brokers that authenticate by password.
    #[arg(long)]
    pub username: Option<String>,
    /// File holding the password (mode 0600).
    #[arg(long, value_name = "FILE", requires = "username")]
    pub password_file: Option<PathBuf>,
}

impl BrokerAuth {
    /// The endpoint for `url`, with these credentials or the keyring's
    /// operator certificate.
    pub fn endpoint(&self, url: &str, keyring: &Path) -> Endpoint {
        self.endpoint_for(url, keyring, Tool::Operator)
    }

    /// The endpoint for `url`, with these credentials or the keyring's
    /// certificate for `tool`.
    pub fn endpoint_for(&self, url: &str, keyring: &Path, tool: Tool) -> Endpoint {
        let flags = MqttAuth {
            ca_file: self.ca.clone(),
            cert_file: self.cert.clone(),
            key_file: self.key.clone(),
            username: self.username.clone(),
            password_file: self.password_file.clone(),
        };
        Endpoint::for_tool(url, &flags, keyring, tool)
    }
}
