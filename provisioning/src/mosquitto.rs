//! `phare broker config`: a ready Mosquitto 2 setup for the fleet.
//!
//! Mutual TLS with the fleet CA, the certificate's common name as the
//! username, and an ACL that gives each device exactly its own topics
//! (docs/protocol.md §3): a stolen screen reads its own assignments and nothing
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
//!   `user` line they apply to anonymous clients only (there are none), not
//!   to every user. So the fleet-wide topics every device reads (roots,
//!   alerts) are patterns without `%u`, which Mosquitto warns about at every
//!   start and reload; the file says why. A `user` block per device instead
//!   would leave a screen enrolled after the ACL was installed without
//!   alerts, silently.
//! - Group membership is no part of the username, so each device's group
//!   assignments get a `user` block of their own, from `devices.json`.
//! - Denied publishes are dropped silently (MQTT 3.1.1 still acks them)
//!   and denied subscriptions deliver nothing: a misconfigured ACL shows as
//!   silence, which is why the end-to-end tests check it on a real broker.
//!
//! Installing: the output folder holds the server's key and stays private
//! to the operator; its `install.sh` puts the files where Debian's
//! Mosquitto reads them. Started as root, Mosquitto drops to the
//! `mosquitto` user *before* it loads the certificates, the key, the ACL
//! and the revocation list, and reads them as that user again at every
//! reload: the script makes them root-owned with group `mosquitto`, the
//! key 0640 in a 0750 directory. Persistence is on; its location is the
//! main config's (Debian's `/var/lib/mosquitto/`), because Mosquitto
//! refuses a second `persistence_location`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use phare_common::files::{Access, create_private_dir, write_atomic};
use phare_protocol::topics::Topics;

use crate::ca::{FleetCa, OPERATOR_NAME, Tool};
use crate::keys::Keyring;
use crate::registry::{Registry, check_name};

/// The largest signed envelope (docs/protocol.md §4).
const MAX_PAYLOAD: usize = 1 << 20;
/// Topic name, fixed header and MQTT 5 properties on top of the payload.
const PACKET_OVERHEAD: usize = 64 << 10;

pub const CONF_FILE: &str = "mosquitto.conf";
pub const ACL_FILE: &str = "acl";
pub const CA_FILE: &str = "ca.pem";
pub const CERT_FILE: &str = "server.pem";
pub const KEY_FILE: &str = "server.key";
pub const CRL_FILE: &str = "crl.pem";
/// Installs the files beside it on the broker host: `sudo sh install.sh`.
pub const INSTALL_SCRIPT: &str = "install.sh";
/// What `mosquitto.conf` is called once installed among the main config's
/// includes.
pub const DROP_IN_FILE: &str = "phare.conf";

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
    /// The directory the main `mosquitto.conf` includes (`include_dir`;
    /// Debian's is `/etc/mosquitto/conf.d`): `mosquitto.conf` is installed
    /// there as [`DROP_IN_FILE`].
    pub include_dir: PathBuf,
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

/// Writes `mosquitto.conf`, `acl`, `ca.pem`, `crl.pem`, `server.pem`,
/// `server.key` and `install.sh` into `out`, and the operator tool's
/// certificates into the keyring if missing. `out` stays private to its
/// owner (it holds the server's key); `install.sh` gives Mosquitto's own
/// user what it reads on the broker host.
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
    write_atomic(
        &out.join(CRL_FILE),
        ca.current_crl()?.as_bytes(),
        Access::Public,
    )?;

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
    write_atomic(
        &out.join(INSTALL_SCRIPT),
        install_script(fleet, setup).as_bytes(),
        Access::Public,
    )?;
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
         # Re-run it after `phare device add` and install it with install.sh (a\n\
         # reload, SIGHUP, rereads it). Usernames are certificate common names.\n\
         # `pattern` lines apply to every user wherever they stand; `topic` lines to\n\
         # the `user` above them, or before any `user` line to anonymous clients only\n\
         # (there are none).\n\n\
         # Every device: its own streams, the fleet's roots and alerts. The roots and\n\
         # the alerts are the same for every device, so their patterns have no %u,\n\
         # and Mosquitto warns at every start and reload:\n\
         #   Warning: ACL pattern '{roots}' does not contain '%c' or '%u'.\n\
         #   Warning: ACL pattern '{alerts}' does not contain '%c' or '%u'.\n\
         # Both are meant: a pattern is the only rule that reaches every certificate,\n\
         # screens enrolled after this file was installed included (a `topic` line\n\
         # per device would leave a new screen without alerts until the next ACL).\n",
        roots = topics.root_filter(),
        alerts = topics.alert_filter(),
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
         # install.sh installs it as {drop_in} and the files it\n\
         # names in {install}.\n\n\
         # Mutual TLS: every client shows a certificate from the fleet CA, not\n\
         # revoked (`phare device revoke` rewrites the list, and install.sh restarts\n\
         # Mosquitto: a reload rereads it but leaves open connections be). Its\n\
         # common name is its username for the ACL, and its client id: no\n\
         # certificate can take over another's session, and each has one\n\
         # connection at a time.\n\
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
         # are away, survive a restart. They are kept in the main mosquitto.conf's\n\
         # persistence_location (Debian's: /var/lib/mosquitto/, the mosquitto\n\
         # user's). Mosquitto refuses it twice, so it is not set here; with a main\n\
         # config that sets none, set it there (this file is rewritten by every\n\
         # `phare broker config`).\n\
         persistence true\n",
        install = setup.install_dir.display(),
        drop_in = setup.include_dir.join(DROP_IN_FILE).display(),
        ca = file(CA_FILE),
        crl = file(CRL_FILE),
        cert = file(CERT_FILE),
        key = file(KEY_FILE),
        acl = file(ACL_FILE),
        payload = MAX_PAYLOAD,
        packet = MAX_PAYLOAD + PACKET_OVERHEAD,
    )
}

/// `install.sh`: installs the files beside it on the broker host, readable
/// by the `mosquitto` user, and restarts Mosquitto when a restart is needed
/// (a new config, certificate, key or revocation list), otherwise reloads
/// it (the ACL). Run by root from anywhere: `sudo sh keys/broker/install.sh`.
pub fn install_script(fleet: &str, setup: &BrokerSetup) -> String {
    let restart_when_changed = [CA_FILE, CRL_FILE, CERT_FILE, KEY_FILE].join(" ");
    format!(
        "#!/bin/sh\n\
         # Installs the Mosquitto 2 setup of Phare fleet {fleet:?} on this host\n\
         # (Debian or Ubuntu), from the files beside this script, written by\n\
         # `phare broker config`. Run it as root, again after every `phare broker\n\
         # config` and `phare device revoke`:  sudo sh <this folder>/{INSTALL_SCRIPT}\n\
         #\n\
         # Started as root, Mosquitto drops to the mosquitto user before it reads its\n\
         # certificates, key, ACL and revocation list, and reads them as that user\n\
         # again at every reload: they are root's, group mosquitto, the key 0640 in\n\
         # a 0750 directory.\n\
         set -eu\n\
         cd \"$(dirname \"$0\")\"\n\
         dir={dir}\n\
         conf={conf}\n\
         # A reload (SIGHUP) rereads the ACL. A new listener, certificate or key\n\
         # takes a restart, and so does a new revocation list: a reload rereads it\n\
         # but keeps open connections, a revoked screen's included.\n\
         action=reload-or-restart\n\
         for file in {restart_when_changed}; do\n\
         \x20   cmp -s \"$file\" \"$dir/$file\" || action=restart\n\
         done\n\
         cmp -s {CONF_FILE} \"$conf\" || action=restart\n\
         install -d -m 750 -g mosquitto \"$dir\"\n\
         install -m 644 {CA_FILE} {CRL_FILE} {CERT_FILE} {ACL_FILE} \"$dir/\"\n\
         install -m 640 -g mosquitto {KEY_FILE} \"$dir/\"\n\
         install -m 644 {CONF_FILE} \"$conf\"\n\
         systemctl \"$action\" mosquitto || {{\n\
         \x20   echo \"installed in $dir and $conf, but systemctl failed: $action mosquitto by hand\" >&2\n\
         \x20   exit 1\n\
         }}\n\
         echo \"installed in $dir and $conf; mosquitto: $action\"\n",
        dir = shell_quoted(&setup.install_dir.display().to_string()),
        conf = shell_quoted(&setup.include_dir.join(DROP_IN_FILE).display().to_string()),
    )
}

/// `text` as one shell word: single-quoted, its own single quotes closed,
/// escaped and reopened.
fn shell_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
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
            include_dir: "/etc/mosquitto/conf.d".into(),
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

    fn debian_setup() -> BrokerSetup {
        BrokerSetup {
            hosts: vec!["broker.example".into()],
            port: 8883,
            bind: None,
            install_dir: "/etc/mosquitto/phare".into(),
            include_dir: "/etc/mosquitto/conf.d".into(),
        }
    }

    /// Debian's main mosquitto.conf sets `persistence_location`, and
    /// Mosquitto refuses a second one; nothing is left for the admin to
    /// uncomment (each run rewrites the file).
    #[test]
    fn the_config_keeps_persistence_on_where_the_main_config_says() {
        let text = conf("acme", &debian_setup());
        let settings: Vec<&str> = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        assert!(settings.contains(&"persistence true"), "{text}");
        assert!(
            settings
                .iter()
                .all(|l| !l.starts_with("persistence_location")),
            "{text}"
        );
        // A setting commented out reads `#setting value`; prose reads `# …`.
        for comment in text.lines().filter(|l| l.starts_with('#')) {
            assert!(
                comment == "#" || comment.starts_with("# "),
                "a commented-out setting: {comment}"
            );
        }
        assert!(text.contains("install.sh installs it as /etc/mosquitto/conf.d/phare.conf"));
    }

    #[test]
    fn the_install_script_installs_for_the_mosquitto_user_and_restarts_only_when_needed() {
        let mut setup = debian_setup();
        let script = install_script("acme", &setup);
        let lines: Vec<&str> = script.lines().map(str::trim).collect();
        for line in [
            "set -eu",
            "dir='/etc/mosquitto/phare'",
            "conf='/etc/mosquitto/conf.d/phare.conf'",
            "action=reload-or-restart",
            "for file in ca.pem crl.pem server.pem server.key; do",
            "cmp -s \"$file\" \"$dir/$file\" || action=restart",
            "cmp -s mosquitto.conf \"$conf\" || action=restart",
            "install -d -m 750 -g mosquitto \"$dir\"",
            "install -m 644 ca.pem crl.pem server.pem acl \"$dir/\"",
            "install -m 640 -g mosquitto server.key \"$dir/\"",
            "install -m 644 mosquitto.conf \"$conf\"",
            "systemctl \"$action\" mosquitto || {",
        ] {
            assert!(lines.contains(&line), "{line} in\n{script}");
        }
        // Changes are measured before anything is installed.
        let position = |line: &str| lines.iter().position(|l| *l == line).unwrap();
        assert!(
            position("cmp -s mosquitto.conf \"$conf\" || action=restart")
                < position("install -d -m 750 -g mosquitto \"$dir\"")
        );
        setup.install_dir = "/srv/it's phare".into();
        assert!(
            install_script("acme", &setup)
                .lines()
                .any(|l| l == r"dir='/srv/it'\''s phare'")
        );
    }

    /// A fleet with one device enrolled and its broker files written.
    struct World {
        _dir: tempfile::TempDir,
        keys: PathBuf,
        bundle: PathBuf,
        broker: PathBuf,
        setup: BrokerSetup,
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
            include_dir: dir.path().join("conf.d"),
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
            setup,
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
    fn a_rerun_changes_no_file_while_the_server_certificate_still_fits() {
        let world = world("acme");
        // Every file the broker reads, as the first run wrote it.
        let files = [
            CERT_FILE,
            KEY_FILE,
            CRL_FILE,
            CONF_FILE,
            ACL_FILE,
            INSTALL_SCRIPT,
        ];
        let read_all = || files.map(|file| std::fs::read(world.broker.join(file)).unwrap());
        let first = read_all();
        // A host fewer: the certificate still covers every one.
        let mut setup = BrokerSetup {
            hosts: vec!["broker.example".into()],
            ..world.setup.clone()
        };
        let again = write_config(&world.keys, &setup, &world.broker).unwrap();
        assert!(!again.server_issued && again.tools_issued.is_empty());
        // Unchanged: install.sh finds nothing that takes a restart.
        assert!(read_all() == first);
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
