//! The operator tool's broker connections: one place that turns a broker
//! URL and credentials into a connected MQTT client, for every command.
//!
//! TLS and credentials are the player's ([`phare_common::tls`]): the
//! operator trusts brokers exactly as devices do. Failures are told in the
//! operator's words: unreachable, TLS refused (and why), not authorised.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use phare_common::mqtt::disconnect;
use phare_common::tls::{MqttAuth, mqtt_options};
use phare_protocol::broker::{BrokerAddr, parse_broker};
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Packet,
    Publish, QoS, SubscribeReasonCode,
};

use crate::ca::{TlsPaths, Tool};

/// Room for the largest envelope (1 MiB) with its topic and headers.
const MAX_PACKET: usize = 2 * 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A broker and how to authenticate to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// As the operator wrote it: what messages name.
    pub url: String,
    pub auth: MqttAuth,
}

/// A bare URL: no credentials (the demo's and the tests' plain brokers).
impl From<&str> for Endpoint {
    fn from(url: &str) -> Endpoint {
        Endpoint {
            url: url.to_string(),
            auth: MqttAuth::default(),
        }
    }
}

impl From<&String> for Endpoint {
    fn from(url: &String) -> Endpoint {
        Endpoint::from(url.as_str())
    }
}

impl From<&Endpoint> for Endpoint {
    fn from(endpoint: &Endpoint) -> Endpoint {
        endpoint.clone()
    }
}

/// Why a broker could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0}")]
    BadAddress(String),
    #[error("credentials for {url}: {reason}")]
    Credentials { url: String, reason: String },
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("TLS with {url} failed: {reason}")]
    Tls { url: String, reason: String },
    #[error("{url} refused us: not authorised ({reason})")]
    NotAuthorised { url: String, reason: String },
    #[error("{url}: {reason}")]
    Protocol { url: String, reason: String },
}

impl Endpoint {
    /// `url` with the credentials the flags give, else (for `mqtts://`)
    /// the keyring's: its CA and the operator's certificate, when present.
    pub fn new(url: &str, flags: &MqttAuth, keyring: &Path) -> Endpoint {
        Endpoint::for_tool(url, flags, keyring, Tool::Operator)
    }

    /// Like [`Endpoint::new`], with `tool`'s certificate (the operator's
    /// if the keyring has none for it, as keyrings set up before it had).
    pub fn for_tool(url: &str, flags: &MqttAuth, keyring: &Path, tool: Tool) -> Endpoint {
        let mut auth = flags.clone();
        let tls = parse_broker(url).is_ok_and(|a| a.tls);
        let none_given =
            flags.ca_file.is_none() && flags.cert_file.is_none() && flags.key_file.is_none();
        if tls && none_given {
            let paths = TlsPaths::new(keyring);
            auth.ca_file = Some(paths.ca_cert()).filter(|p| p.exists());
            let held = [tool, Tool::Operator]
                .into_iter()
                .map(|t| (paths.tool_cert(t), paths.tool_key(t)))
                .find(|(cert, key)| cert.exists() && key.exists());
            if let Some((cert, key)) = held {
                auth.cert_file = Some(cert);
                auth.key_file = Some(key);
            }
        }
        Endpoint {
            url: url.to_string(),
            auth,
        }
    }

    pub fn addr(&self) -> Result<BrokerAddr, ConnectError> {
        parse_broker(&self.url).map_err(ConnectError::BadAddress)
    }

    /// MQTT options for this broker (TLS, credentials, packet size) under
    /// a client id unique to this process and call.
    pub fn options(&self, purpose: &str) -> Result<MqttOptions, ConnectError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let client_id = format!(
            "phare-{purpose}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        self.options_as(&client_id)
    }

    /// MQTT options under a fixed client id (a durable session).
    pub fn options_as(&self, client_id: &str) -> Result<MqttOptions, ConnectError> {
        let addr = self.addr()?;
        let mut options = mqtt_options(client_id, &addr, &self.auth).map_err(|e| {
            // The CA is found in the keyring: without one, the likely cause
            // is a command run away from it.
            let reason = if addr.tls && self.auth.ca_file.is_none() {
                "mqtts:// needs the fleet CA to verify the broker, and none was found: \
                 run this where your keyring is, or pass --keyring DIR (holding tls/ca.pem) \
                 or --ca FILE"
                    .to_string()
            } else {
                e.to_string()
            };
            ConnectError::Credentials {
                url: self.url.clone(),
                reason,
            }
        })?;
        options.set_max_packet_size(MAX_PACKET, MAX_PACKET);
        Ok(options)
    }

    /// Connects and waits for the broker's acceptance.
    pub async fn connect(
        &self,
        options: MqttOptions,
    ) -> Result<(AsyncClient, EventLoop), ConnectError> {
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        let accepted = self.poll_until(&mut eventloop, |event| {
            matches!(event, Event::Incoming(Packet::ConnAck(_)))
        });
        match tokio::time::timeout(CONNECT_TIMEOUT, accepted).await {
            Ok(result) => result.map(|()| (client, eventloop)),
            Err(_) => Err(ConnectError::Unreachable {
                url: self.url.clone(),
                reason: format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
            }),
        }
    }

    /// Polls until an event satisfies `done`.
    pub async fn poll_until(
        &self,
        eventloop: &mut EventLoop,
        mut done: impl FnMut(&Event) -> bool,
    ) -> Result<(), ConnectError> {
        loop {
            match eventloop.poll().await {
                Ok(event) if done(&event) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(self.explain(e)),
            }
        }
    }

    /// Says what went wrong with this broker, in the operator's words.
    pub fn explain(&self, error: ConnectionError) -> ConnectError {
        let url = self.url.clone();
        // rumqttc wraps the rustls error of a refused handshake in an I/O
        // error, itself wrapped when the broker's alert arrives while the
        // CONNACK is read.
        if let Some(tls) = find_in_chain::<rustls::Error>(&error) {
            return ConnectError::Tls {
                url,
                reason: tls_reason(tls),
            };
        }
        match error {
            ConnectionError::ConnectionRefused(
                code @ (ConnectReturnCode::NotAuthorized | ConnectReturnCode::BadUserNamePassword),
            ) => ConnectError::NotAuthorised {
                url,
                reason: format!("{code:?}"),
            },
            ConnectionError::NetworkTimeout => ConnectError::Unreachable {
                url,
                reason: "the connection timed out".into(),
            },
            other => match find_in_chain::<std::io::Error>(&other) {
                Some(io) => ConnectError::Unreachable {
                    reason: io_reason(io, self.addr().is_ok_and(|a| a.tls)),
                    url,
                },
                None if matches!(other, ConnectionError::Tls(_)) => ConnectError::Tls {
                    url,
                    reason: other.to_string(),
                },
                None => ConnectError::Protocol {
                    url,
                    reason: other.to_string(),
                },
            },
        }
    }
}

fn io_reason(error: &std::io::Error, tls: bool) -> String {
    use std::io::ErrorKind::{ConnectionRefused, ConnectionReset, UnexpectedEof};
    match error.kind() {
        ConnectionRefused => "connection refused".into(),
        // A TLS listener hangs up on a plain MQTT hello.
        ConnectionReset | UnexpectedEof if !tls => {
            format!("{error} (is it an mqtts:// broker?)")
        }
        _ => error.to_string(),
    }
}

/// The messages retained under `filter` (each at most [`MAX_PACKET`]
/// bytes): the broker sends them right after it confirms the
/// subscription, so reading ends once none arrived for `quiet`.
/// `purpose` names the client (see [`Endpoint::options`]).
pub async fn retained(
    broker: &Endpoint,
    purpose: &str,
    filter: &str,
    quiet: Duration,
) -> anyhow::Result<Vec<Publish>> {
    let url = &broker.url;
    let (client, mut eventloop) = broker.connect(broker.options(purpose)?).await?;
    client.subscribe(filter, QoS::AtLeastOnce).await?;
    let mut messages = Vec::new();
    let mut subscribed = false;
    loop {
        let wait = if subscribed { quiet } else { CONNECT_TIMEOUT };
        let event = match tokio::time::timeout(wait, eventloop.poll()).await {
            Err(_) if subscribed => break,
            Err(_) => anyhow::bail!(
                "{url} did not confirm the subscription within {} s",
                CONNECT_TIMEOUT.as_secs()
            ),
            Ok(event) => event.map_err(|e| broker.explain(e))?,
        };
        match event {
            Event::Incoming(Packet::SubAck(ack)) => {
                anyhow::ensure!(
                    ack.return_codes
                        .iter()
                        .all(|c| matches!(c, SubscribeReasonCode::Success(_))),
                    "{url} refused the subscription to {filter}: not authorised"
                );
                subscribed = true;
            }
            Event::Incoming(Packet::Publish(p)) if p.retain => messages.push(p),
            _ => {}
        }
    }
    disconnect(&client, &mut eventloop).await;
    Ok(messages)
}

/// The first `E` in an error's chain, looking inside I/O errors too
/// (their `source` skips the error they carry).
fn find_in_chain<'a, E: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a E> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(found) = error.downcast_ref::<E>() {
            return Some(found);
        }
        let carried = error
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref());
        if let Some(found) = carried.and_then(|inner| find_in_chain::<E>(inner)) {
            return Some(found);
        }
        next = error.source();
    }
    None
}

fn tls_reason(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext {
            expected,
            presented,
        }) => {
            let expected = match expected {
                rustls::pki_types::ServerName::DnsName(name) => name.as_ref().to_string(),
                rustls::pki_types::ServerName::IpAddress(ip) => {
                    std::net::IpAddr::from(*ip).to_string()
                }
                other => format!("{other:?}"),
            };
            // rustls shows them as `DnsName("x")` / `IpAddress(x)`.
            let names: Vec<&str> = presented
                .iter()
                .map(|p| {
                    p.split_once('(')
                        .map_or(p.as_str(), |(_, inner)| inner.trim_end_matches(')'))
                        .trim_matches('"')
                })
                .collect();
            format!(
                "the broker's certificate is for {}, not {expected}: connect with one of those \
                 names, or run `phare broker config --host {expected}` again for a certificate \
                 that names it",
                names.join(", ")
            )
        }
        rustls::Error::InvalidCertificate(why) => {
            format!("the broker's certificate is not trusted ({why:?})")
        }
        rustls::Error::AlertReceived(alert) => {
            format!("the broker refused our certificate ({alert:?}): is it one of the fleet CA's?")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_mismatch_says_which_names_the_certificate_has_and_what_to_do() {
        let error =
            rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext {
                expected: rustls::pki_types::ServerName::try_from("localhost").unwrap(),
                presented: vec!["IpAddress(127.0.0.1)".into()],
            });
        let reason = tls_reason(&error);
        assert!(
            reason.starts_with("the broker's certificate is for 127.0.0.1, not localhost"),
            "{reason}"
        );
        assert!(
            reason.contains("phare broker config --host localhost"),
            "{reason}"
        );
    }

    #[test]
    fn an_mqtts_broker_without_a_ca_points_at_the_keyring() {
        let nowhere = tempfile::tempdir().unwrap();
        let endpoint = Endpoint::new("mqtts://broker", &MqttAuth::default(), nowhere.path());
        let error = endpoint.options("test").unwrap_err().to_string();
        assert!(error.contains("--keyring"), "{error}");
    }

    #[test]
    fn mqtts_defaults_to_the_keyrings_ca_and_operator_certificate() {
        let keyring = tempfile::tempdir().unwrap();
        let paths = TlsPaths::new(keyring.path());
        std::fs::create_dir_all(paths.ca_cert().parent().unwrap()).unwrap();
        for file in [paths.ca_cert(), paths.operator_cert(), paths.operator_key()] {
            std::fs::write(file, "x").unwrap();
        }
        let none = MqttAuth::default();
        let tls = Endpoint::new("mqtts://broker", &none, keyring.path());
        assert_eq!(tls.auth.ca_file, Some(paths.ca_cert()));
        assert_eq!(tls.auth.cert_file, Some(paths.operator_cert()));
        assert_eq!(tls.auth.key_file, Some(paths.operator_key()));
        // Flags win, and plain brokers get no TLS files.
        let given = MqttAuth {
            ca_file: Some("other-ca.pem".into()),
            ..MqttAuth::default()
        };
        assert_eq!(
            Endpoint::new("mqtts://broker", &given, keyring.path()).auth,
            given
        );
        assert_eq!(
            Endpoint::new("mqtt://broker", &none, keyring.path()).auth,
            none
        );
        // The collector's own certificate once there is one.
        let collector = |keyring: &Path| {
            Endpoint::for_tool("mqtts://broker", &none, keyring, Tool::Collector).auth
        };
        assert_eq!(
            collector(keyring.path()).cert_file,
            Some(paths.operator_cert())
        );
        for file in [
            paths.tool_cert(Tool::Collector),
            paths.tool_key(Tool::Collector),
        ] {
            std::fs::write(file, "x").unwrap();
        }
        assert_eq!(
            collector(keyring.path()).key_file,
            Some(paths.tool_key(Tool::Collector))
        );
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable_with_its_reason() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let endpoint = Endpoint::from(format!("mqtt://127.0.0.1:{port}").as_str());
        let Err(err) = endpoint.connect(endpoint.options("test").unwrap()).await else {
            panic!("connected to a closed port");
        };
        assert_eq!(
            err.to_string(),
            format!("cannot reach mqtt://127.0.0.1:{port}: connection refused")
        );
    }
}
