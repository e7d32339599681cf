//! `phare broker config`: a ready Mosquitto 2 setup for the fleet.
//!
//! Mutual TLS with the fleet CA, the certificate's common name as the
//! username, and an ACL that gives each device exactly its own topics
//! (DESIGN.md §4): a stolen screen reads its own assignments and nothing
//! else, and cannot speak for another screen. Two more things cut a stolen
//! screen off from the others:
//!
//! - The certificate revocation list (`crlfile`), which `phare device
//!   revoke` rewrites: Mosquitto refuses a listed certificate in the TLS
//!   handshake. It rereads the list on SIGHUP (2.0.11: the listener's
//!   certificates are reloaded, the list with them), but keeps connections
//!   already open: a restart drops the revoked screen's.
//! - `use_username_as_clientid`: the client id a connection gives is
//!   replaced by its username, the certificate's name. Without it any
//!   certificate could connect under another screen's client id and take
//!   its session over, knocking it off. Mosquitto 2.0 has no option that
//!   *refuses* a client id other than the name; this one makes the two the
//!   same, so a screen can only ever take its own place. The price: one
//!   connection per certificate, which is why `phare pop collect` has its
//!   own ([`Tool`]).
//!
//! Mosquitto's ACL rules that shape the file:
//!
//! - `pattern` lines apply to every user, wherever they appear; `%u` is
//!   the username (here the certificate's CN).
//! - `topic` lines apply to the `user` line above them; before the first
//!   `user` line they would apply to anonymous clients (there are none).
//! - Group membership is no part of the username, so each device's group
//!   assignments get a `user` block of their own, from `devices.json`.
//! - Denied publishes are dropped silently (MQTT 3.1.1 still acks them)
//!   and denied subscriptions deliver nothing: a misconfigured ACL shows as
//!   silence, which is why the end-to-end tests check it on a real broker.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use phare_common::files::{Access, create_private_dir, write_atomic};
use phare_protocol::topics::Topics;

use crate::ca::{FleetCa, OPERATOR_NAME, Tool};
use crate::keys::Keyring;
use crate::registry::{Registry, check_name};

/// The largest signed envelope (DESIGN.md §2).
const MAX_PAYLOAD: usize = 1 << 20;
/// Topic name, fixed header and MQTT 5 properties on top of the payload.
const PACKET_OVERHEAD: usize = 64 << 10;

pub const CONF_FILE: &str = "mosquitto.conf";
pub const ACL_FILE: &str = "acl";
pub const CA_FILE: &str = "ca.pem";
pub const CERT_FILE: &str = "server.pem";
pub const KEY_FILE: &str = "server.key";
pub const CRL_FILE: &str = "crl.pem";

/// How the broker is reached and where its files will live.
#[derive(Debug, Clone)]
pub struct BrokerSetup {
    /// Names and addresses devices use for the broker: the server
    /// certificate's subject alternative names.
    pub hosts: Vec<String>,
    pub port: u16,
    /// Address to listen on; all interfaces when absent.
    pub bind: Option<String>,
    /// Where the files are installed on the broker host: the config names
    /// them by absolute path.
    pub install_dir: PathBuf,
}

/// What `write_config` did.
#[derive(Debug)]
pub struct BrokerWritten {
    /// The server certificate was (re)issued; otherwise the one in the
    /// output directory still covered every host.
    pub server_issued: bool,
    /// The operator tool's client certificates created in the keyring.
    pub tools_issued: Vec<Tool>,
    /// Devices with ACL entries of their own (their groups).
    pub devices: usize,
}

/// Writes `mosquitto.conf`, `acl`, `ca.pem`, `crl.pem`, `server.pem` and
/// `server.key` into `out`, and the operator tool's certificates into the
/// keyring if missing.
pub fn write_config(
    keyring_dir: &Path,
    setup: &BrokerSetup,
    out: &Path,
) -> anyhow::Result<BrokerWritten> {
    let keyring = Keyring::open(keyring_dir)?;
    let fleet = &keyring.root().fleet;
    check_name("fleet", fleet)?;
    anyhow::ensure!(!setup.hosts.is_empty(), "name at least one --host");
    let registry = Registry::load(keyring_dir)?;
    let (ca, _) = FleetCa::open_or_create(keyring_dir, fleet)?;
    create_private_dir(out)?;

    let (cert, key) = (out.join(CERT_FILE), out.join(KEY_FILE));
    let current = std::fs::read_to_string(&cert).ok().filter(|pem| {
        key.exists()
            && setup
                .hosts
                .iter()
                .all(|host| ca.verify_server(pem, host).is_ok())
    });
    let server_issued = current.is_none();
    if server_issued {
        ca.issue_server(&setup.hosts)?.write(&cert, &key)?;
    }
    let tools_issued = ca.ensure_tool_certs()?;
    write_crl(&ca, out)?;

    let topics = Topics::for_fleet(fleet);
    write_atomic(&out.join(CA_FILE), ca.pem().as_bytes(), Access::Public)?;
    write_atomic(
        &out.join(ACL_FILE),
        acl(fleet, &topics, &registry).as_bytes(),
        Access::Public,
    )?;
    write_atomic(
        &out.join(CONF_FILE),
        conf(fleet, setup).as_bytes(),
        Access::Public,
    )
    .context("writing the Mosquitto config")?;
    Ok(BrokerWritten {
        server_issued,
        tools_issued,
        devices: registry
            .devices
            .iter()
            .filter(|d| !d.groups.is_empty())
            .count(),
    })
}

/// Writes a new revocation list into the broker files in `out`; returns
/// its path.
pub fn write_crl(ca: &FleetCa, out: &Path) -> anyhow::Result<PathBuf> {
    create_private_dir(out)?;
    let path = out.join(CRL_FILE);
    write_atomic(&path, ca.crl()?.as_bytes(), Access::Public)?;
    Ok(path)
}

/// The ACL file for the fleet's devices and operator.
pub fn acl(fleet: &str, topics: &Topics, registry: &Registry) -> String {
    let mut text = format!(
        "# Mosquitto ACL of Phare fleet {fleet:?}, written by `phare broker config`.\n\
         # Re-run it after `phare device add`, install it over this one, and reload\n\
         # mosquitto (SIGHUP). Usernames are certificate common names.\n\
         # `pattern` lines apply to every user wherever they stand; `topic` lines to\n\
         # the `user` above them.\n\n\
         # Every device: its own streams, the fleet's roots and alerts.\n"
    );
    let own = "%u";
    let lines = [
        ("read", topics.device_assignment(own)),
        ("read", topics.command(own)),
        ("read", topics.pop_ack(own)),
        ("read", topics.root_filter()),
        ("read", topics.alert_filter()),
        ("write", topics.status(own)),
        ("write", topics.events(own)),
        ("write", topics.pop(own)),
        ("write", topics.response(own)),
    ];
    for (access, topic) in lines {
        let _ = writeln!(text, "pattern {access} {topic}");
    }
    let _ = write!(
        text,
        "\n# The operator tool: everything of the fleet.\nuser {OPERATOR_NAME}\ntopic readwrite {}\n",
        topics.fleet_filter()
    );
    let _ = write!(
        text,
        "\n# The proof-of-play collector: every screen's records, and its\n# acknowledgements of them, nothing else.\nuser {}\ntopic read {}\ntopic write {}\n",
        Tool::Collector.name(),
        topics.pop("+"),
        topics.pop_ack("+")
    );
    let grouped: Vec<_> = registry
        .devices
        .iter()
        .filter(|d| !d.groups.is_empty())
        .collect();
    if !grouped.is_empty() {
        text.push_str("\n# Group assignments, device by device.\n");
    }
    for device in grouped {
        let _ = writeln!(text, "user {}", device.name);
        for group in &device.groups {
            let _ = writeln!(text, "topic read {}", topics.group_assignment(group));
        }
    }
    text
}

/// `mosquitto.conf`: one mutual-TLS listener, the ACL, the size limit,
/// persistence.
pub fn conf(fleet: &str, setup: &BrokerSetup) -> String {
    let file = |name: &str| setup.install_dir.join(name).display().to_string();
    let listener = match &setup.bind {
        Some(address) => format!("{} {address}", setup.port),
        None => setup.port.to_string(),
    };
    format!(
        "# Mosquitto 2 for Phare fleet {fleet:?}, written by `phare broker config`.\n\
         # On Debian/Ubuntu install it as /etc/mosquitto/conf.d/phare.conf; the files\n\
         # it names go in {install}.\n\n\
         # Mutual TLS: every client shows a certificate from the fleet CA, not\n\
         # revoked (`phare device revoke` rewrites the list; install it and restart:\n\
         # a reload rereads it but leaves open connections be). Its common name is\n\
         # its username for the ACL, and its client id: no certificate can take\n\
         # over another's session, and each has one connection at a time.\n\
         listener {listener}\n\
         cafile {ca}\n\
         crlfile {crl}\n\
         certfile {cert}\n\
         keyfile {key}\n\
         require_certificate true\n\
         use_identity_as_username true\n\
         use_username_as_clientid true\n\
         allow_anonymous false\n\
         acl_file {acl}\n\n\
         # A signed envelope is at most {payload} bytes; the packet adds its topic\n\
         # and headers. Larger packets disconnect their sender.\n\
         max_packet_size {packet}\n\n\
         # Retained documents and statuses, and messages queued for devices that\n\
         # are away, survive a restart.\n\
         persistence true\n\
         # persistence_location must name a directory the mosquitto user can write.\n\
         # Debian's main mosquitto.conf sets it (to /var/lib/mosquitto/), and setting\n\
         # it twice is an error; elsewhere, uncomment:\n\
         #persistence_location /var/lib/mosquitto/\n",
        install = setup.install_dir.display(),
        ca = file(CA_FILE),
        crl = file(CRL_FILE),
        cert = file(CERT_FILE),
        key = file(KEY_FILE),
        acl = file(ACL_FILE),
        payload = MAX_PAYLOAD,
        packet = MAX_PAYLOAD + PACKET_OVERHEAD,
    )
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::Arc;
    use std::time::Duration;

    use jiff::Timestamp;
    use phare_common::tls::MqttAuth;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use rustls::server::WebPkiClientVerifier;
    use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

    use super::*;
    use crate::ca::TlsPaths;
    use crate::enrol::{CONFIG_FILE, add_device, tests::spec};
    use crate::keys::InitSpec;
    use crate::registry::DeviceRecord;

    #[test]
    fn the_acl_gives_each_device_its_own_topics_and_its_groups() {
        let device = |name: &str, groups: &[&str]| DeviceRecord {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            added_at: Timestamp::UNIX_EPOCH,
            cert_sha256: String::new(),
        };
        let registry = Registry {
            devices: vec![device("hall-1", &[]), device("lobby-1", &["lobby", "hall"])],
        };
        let text = acl("acme", &Topics::for_fleet("acme"), &registry);
        let rules: Vec<&str> = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        assert_eq!(
            rules,
            [
                "pattern read phare/acme/device/%u/assignment",
                "pattern read phare/acme/device/%u/command",
                "pattern read phare/acme/device/%u/pop/ack",
                "pattern read phare/acme/trust/root/+",
                "pattern read phare/acme/alert/+",
                "pattern write phare/acme/device/%u/status",
                "pattern write phare/acme/device/%u/events",
                "pattern write phare/acme/device/%u/pop",
                "pattern write phare/acme/device/%u/response",
                "user phare-operator",
                "topic readwrite phare/acme/#",
                "user phare-collector",
                "topic read phare/acme/device/+/pop",
                "topic write phare/acme/device/+/pop/ack",
                // hall-1 has no group: the patterns are all it needs.
                "user lobby-1",
                "topic read phare/acme/group/lobby/assignment",
                "topic read phare/acme/group/hall/assignment",
            ]
        );
    }

    #[test]
    fn the_config_names_the_installed_files_and_allows_a_whole_envelope() {
        let setup = BrokerSetup {
            hosts: vec!["broker.example".into()],
            port: 8883,
            bind: Some("10.0.0.2".into()),
            install_dir: "/etc/mosquitto/phare".into(),
        };
        let text = conf("acme", &setup);
        for line in [
            "listener 8883 10.0.0.2",
            "cafile /etc/mosquitto/phare/ca.pem",
            "keyfile /etc/mosquitto/phare/server.key",
            "acl_file /etc/mosquitto/phare/acl",
            "crlfile /etc/mosquitto/phare/crl.pem",
            "require_certificate true",
            "use_identity_as_username true",
            "use_username_as_clientid true",
            "allow_anonymous false",
            "persistence true",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        let limit: usize = text
            .lines()
            .find_map(|l| l.strip_prefix("max_packet_size "))
            .unwrap()
            .parse()
            .unwrap();
        assert!(limit > MAX_PAYLOAD + 256, "{limit}");
    }

    /// A fleet with one device enrolled and its broker files written.
    struct World {
        _dir: tempfile::TempDir,
        keys: PathBuf,
        bundle: PathBuf,
        broker: PathBuf,
    }

    fn world(fleet: &str) -> World {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        Keyring::init(&keys, fleet, InitSpec::default()).unwrap();
        let bundle = add_device(&keys, &spec("lobby-1", &["lobby"]), None, false)
            .unwrap()
            .bundle;
        let broker = dir.path().join("broker");
        let setup = BrokerSetup {
            hosts: vec!["127.0.0.1".into(), "broker.example".into()],
            port: 8883,
            bind: None,
            install_dir: broker.clone(),
        };
        let written = write_config(&keys, &setup, &broker).unwrap();
        assert!(written.server_issued);
        assert_eq!(written.tools_issued, Tool::ALL);
        assert_eq!(written.devices, 1);
        World {
            _dir: dir,
            keys,
            bundle,
            broker,
        }
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    /// The broker's TLS side, as Mosquitto is configured: its certificate,
    /// and a client certificate from the CA required.
    fn server_config(broker: &Path) -> Arc<ServerConfig> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(broker.join(CA_FILE)).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .unwrap();
        let chain = CertificateDer::pem_file_iter(broker.join(CERT_FILE))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(broker.join(KEY_FILE)).unwrap();
        Arc::new(
            ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_client_cert_verifier(verifier)
                .with_single_cert(chain, key)
                .unwrap(),
        )
    }

    /// A real TLS handshake on loopback; the server says "ok" once it
    /// accepted the client. Returns the client's error, if any.
    fn handshake(
        server: Arc<ServerConfig>,
        client: Arc<ClientConfig>,
        host: &str,
    ) -> Result<(), String> {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let serving = std::thread::spawn(move || -> std::io::Result<()> {
            let (mut tcp, _) = listener.accept()?;
            tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
            let mut tls = ServerConnection::new(server).map_err(std::io::Error::other)?;
            while tls.is_handshaking() {
                tls.complete_io(&mut tcp)?;
            }
            tls.writer().write_all(b"ok")?;
            while tls.wants_write() {
                tls.complete_io(&mut tcp)?;
            }
            Ok(())
        });
        let mut tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let name = ServerName::try_from(host.to_string()).unwrap();
        let mut tls = ClientConnection::new(client, name).unwrap();
        let mut answer = [0u8; 2];
        let result = rustls::Stream::new(&mut tls, &mut tcp)
            .read_exact(&mut answer)
            .map_err(|e| e.to_string());
        drop(tcp);
        let _ = serving.join();
        result.map(|()| assert_eq!(&answer, b"ok"))
    }

    #[test]
    fn devices_and_the_operator_complete_mutual_tls_with_the_broker() {
        let world = world("acme");
        let server = server_config(&world.broker);
        let device = phare_common::config::Config::load(&world.bundle.join(CONFIG_FILE)).unwrap();
        for host in ["127.0.0.1", "broker.example"] {
            handshake(server.clone(), device.mqtt.client_config().unwrap(), host).unwrap();
        }
        let tls = TlsPaths::new(&world.keys);
        let operator = MqttAuth {
            ca_file: Some(tls.ca_cert()),
            cert_file: Some(tls.operator_cert()),
            key_file: Some(tls.operator_key()),
            ..MqttAuth::default()
        };
        handshake(
            server.clone(),
            operator.client_config().unwrap(),
            "127.0.0.1",
        )
        .unwrap();

        // A name the certificate does not carry is refused by the client.
        let err = handshake(
            server,
            device.mqtt.client_config().unwrap(),
            "other.example",
        )
        .unwrap_err();
        assert!(err.contains("not valid for name"), "{err}");
    }

    #[test]
    fn another_fleets_certificates_are_refused_both_ways() {
        let (ours, theirs) = (world("acme"), world("rival"));
        let our_device =
            phare_common::config::Config::load(&ours.bundle.join(CONFIG_FILE)).unwrap();
        let their_device =
            phare_common::config::Config::load(&theirs.bundle.join(CONFIG_FILE)).unwrap();
        // Their device, trusting our CA for the server but holding their
        // certificate: our broker refuses it.
        let mut intruder = their_device.mqtt.clone();
        intruder.ca_file = our_device.mqtt.ca_file.clone();
        let err = handshake(
            server_config(&ours.broker),
            intruder.client_config().unwrap(),
            "127.0.0.1",
        )
        .unwrap_err();
        assert!(err.contains("UnknownCA"), "{err}");
        // Our device does not trust their broker.
        let err = handshake(
            server_config(&theirs.broker),
            our_device.mqtt.client_config().unwrap(),
            "127.0.0.1",
        )
        .unwrap_err();
        assert!(err.contains("UnknownIssuer"), "{err}");
    }

    #[test]
    fn a_rerun_keeps_a_server_certificate_that_still_fits() {
        let world = world("acme");
        let cert = std::fs::read(world.broker.join(CERT_FILE)).unwrap();
        let mut setup = BrokerSetup {
            hosts: vec!["broker.example".into()],
            port: 8883,
            bind: None,
            install_dir: world.broker.clone(),
        };
        let again = write_config(&world.keys, &setup, &world.broker).unwrap();
        assert!(!again.server_issued && again.tools_issued.is_empty());
        assert_eq!(std::fs::read(world.broker.join(CERT_FILE)).unwrap(), cert);
        setup.hosts.push("10.0.0.9".into());
        assert!(
            write_config(&world.keys, &setup, &world.broker)
                .unwrap()
                .server_issued
        );
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(world.broker.join(KEY_FILE))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }
}
