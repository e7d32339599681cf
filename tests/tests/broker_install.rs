//! The fleet's broker installed on a Debian host as the README says:
//! `phare broker config`, then `sudo sh keys/broker/install.sh`, then
//! Mosquitto started as Debian's systemd unit starts it: as root, from
//! Debian's main mosquitto.conf, which includes `conf.d/` and keeps
//! persistence in /var/lib/mosquitto/. Started as root, Mosquitto drops to
//! the `mosquitto` user before it reads the fleet's certificates, key, ACL
//! and revocation list, and reads them as that user again at each reload.
//!
//! The host's directories live in the broker's private directory of the
//! test, laid out as on Debian (`etc/mosquitto/…`, `var/lib/mosquitto`,
//! `run/mosquitto`). `systemctl` is a stand-in that records what the
//! script asked for; the test then does what systemd would.
//!
//! The privilege drop is the point, so the test needs root and a
//! `mosquitto` user, as `make test` has on Debian. Elsewhere it says so and
//! checks nothing: `broker_acl` runs the same generated config in place,
//! without the drop.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use phare_common::mqtt::disconnect;
use phare_player::tls::MqttAuth;
use phare_protocol::topics::Topics;
use phare_provisioning::connect::Endpoint;
use phare_provisioning::enrol::{CONFIG_FILE, DeviceSpec, add_device, revoke_device};
use phare_provisioning::keys::{InitSpec, Keyring};
use phare_provisioning::mosquitto::{
    ACL_FILE, BrokerSetup, CONF_FILE, INSTALL_SCRIPT, write_config,
};
use phare_tests::{DEVICE, FLEET, Mosquitto, TIMEOUT};
use rumqttc::{Event, Packet, QoS};

/// Debian bookworm's /etc/mosquitto/mosquitto.conf (mosquitto 2.0.11),
/// without its comments.
const DEBIAN_MAIN_CONF: &str = "pid_file /run/mosquitto/mosquitto.pid\n\
    persistence true\n\
    persistence_location /var/lib/mosquitto/\n\
    log_dest file /var/log/mosquitto/mosquitto.log\n\
    include_dir /etc/mosquitto/conf.d\n";

/// Mosquitto's own user on Debian.
const MOSQUITTO_USER: &str = "mosquitto";

/// The user id of `name`, if there is such a user.
fn uid_of(name: &str) -> Option<u32> {
    let output = Command::new("id").args(["-u", name]).output().ok()?;
    output.status.success().then_some(())?;
    String::from_utf8(output.stdout).ok()?.trim().parse().ok()
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").unwrap().uid() == 0
}

/// The setup for a broker host whose root directory is `host`.
fn setup(host: &Path, port: u16) -> BrokerSetup {
    BrokerSetup {
        hosts: vec!["127.0.0.1".into()],
        port,
        bind: Some("127.0.0.1".into()),
        install_dir: host.join("etc/mosquitto/phare"),
        include_dir: host.join("etc/mosquitto/conf.d"),
    }
}

/// Lays out what the Debian package and its unit make before Mosquitto
/// starts, under `host`, and returns the main config, its paths moved
/// under `host` too. The log goes to stderr, where the harness reads it,
/// rather than to /var/log.
fn debian_host(host: &Path) -> String {
    // The host's root: anyone may traverse it, as `/`.
    let chmod = Command::new("chmod").arg("755").arg(host).status().unwrap();
    assert!(chmod.success());
    std::fs::create_dir_all(host.join("etc/mosquitto/conf.d")).unwrap();
    for own in ["var/lib/mosquitto", "run/mosquitto"] {
        std::fs::create_dir_all(host.join(own)).unwrap();
        let chown = Command::new("chown")
            .arg(MOSQUITTO_USER)
            .arg(host.join(own))
            .status()
            .unwrap();
        assert!(chown.success());
    }
    DEBIAN_MAIN_CONF
        .replace(" /", &format!(" {}/", host.display()))
        .lines()
        .map(|line| match line.starts_with("log_dest ") {
            true => "log_dest stderr",
            false => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `install.sh` as the README says, with a `systemctl` that records
/// its arguments; returns them.
fn install(out: &Path, stand_ins: &Path) -> String {
    let calls = stand_ins.join("systemctl.calls");
    let systemctl = stand_ins.join("systemctl");
    std::fs::write(
        &systemctl,
        format!("#!/bin/sh\necho \"$*\" > '{}'\n", calls.display()),
    )
    .unwrap();
    let chmod = Command::new("chmod").arg("755").arg(&systemctl).status();
    assert!(chmod.unwrap().success());
    let path = format!(
        "{}:{}",
        stand_ins.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("sh")
        .arg(out.join(INSTALL_SCRIPT))
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::read_to_string(calls).unwrap().trim().to_string()
}

/// Waits until `done` holds, or fails with `what`.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The device connects with its bundle's TLS files and gets the retained
/// alert through the ACL.
async fn device_gets_alert(broker: &Mosquitto, bundle: &Path, alert_topic: &str) {
    let device = Endpoint {
        url: format!("mqtts://127.0.0.1:{}", broker.port),
        auth: phare_player::config::Config::load(&bundle.join(CONFIG_FILE))
            .unwrap()
            .mqtt,
    };
    let (client, mut eventloop) = device
        .connect(device.options("install").unwrap())
        .await
        .expect("the device connects over TLS");
    client
        .subscribe(Topics::for_fleet(FLEET).alert_filter(), QoS::AtLeastOnce)
        .await
        .unwrap();
    let received = device.poll_until(
        &mut eventloop,
        |event| matches!(event, Event::Incoming(Packet::Publish(p)) if p.topic == alert_topic),
    );
    tokio::time::timeout(TIMEOUT, received)
        .await
        .expect("the device gets the retained alert")
        .unwrap();
    disconnect(&client, &mut eventloop).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_installed_broker_starts_as_its_own_user_with_persistence_after_every_rerun() {
    let Some(mosquitto_uid) = uid_of(MOSQUITTO_USER).filter(|_| running_as_root()) else {
        eprintln!(
            "not checked: installing as on Debian needs root and a mosquitto user \
             (broker_acl runs the same config without the privilege drop)"
        );
        return;
    };
    // The operator's machine: the keyring and the broker's files.
    let operator = tempfile::tempdir().unwrap();
    let keys = operator.path().join("keys");
    Keyring::init(&keys, FLEET, InitSpec::default()).unwrap();
    let spec = DeviceSpec {
        name: DEVICE.into(),
        groups: vec!["lobby".into()],
        brokers: vec!["mqtts://127.0.0.1".into()],
        origins: Vec::new(),
    };
    let bundle = add_device(&keys, &spec, None, false).unwrap().bundle;
    let out = keys.join("broker");

    let mut host = PathBuf::new();
    let broker = Mosquitto::start_with_config(|port, dir| {
        host = dir.to_path_buf();
        write_config(&keys, &setup(dir, port), &out).unwrap();
        let main_conf = debian_host(dir);
        assert_eq!(install(&out, operator.path()), "restart mosquitto");
        main_conf
    });
    let pid = broker.pid().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status.lines().any(|l| l.starts_with("Uid:")
            && l.split_whitespace().nth(2) == Some(&mosquitto_uid.to_string())),
        "mosquitto dropped to its user:\n{status}"
    );

    // The operator leaves an alert, retained; the device connects and reads it.
    let alert_topic = Topics::for_fleet(FLEET).alert("install-check");
    let operator_endpoint = Endpoint::new(
        &format!("mqtts://127.0.0.1:{}", broker.port),
        &MqttAuth::default(),
        &keys,
    );
    let (client, mut eventloop) = operator_endpoint
        .connect(operator_endpoint.options("install").unwrap())
        .await
        .unwrap();
    client
        .publish(&alert_topic, QoS::AtLeastOnce, true, b"retained".to_vec())
        .await
        .unwrap();
    let acked = operator_endpoint.poll_until(&mut eventloop, |event| {
        matches!(event, Event::Incoming(Packet::PubAck(_)))
    });
    tokio::time::timeout(TIMEOUT, acked).await.unwrap().unwrap();
    device_gets_alert(&broker, &bundle, &alert_topic).await;

    // A rerun changes nothing, keeps persistence on, and takes a reload,
    // after which Mosquitto, now its own user, rereads every file.
    let conf = std::fs::read_to_string(out.join(CONF_FILE)).unwrap();
    write_config(&keys, &setup(&host, broker.port), &out).unwrap();
    assert_eq!(std::fs::read_to_string(out.join(CONF_FILE)).unwrap(), conf);
    assert!(conf.lines().any(|l| l == "persistence true"));
    assert_eq!(
        install(&out, operator.path()),
        "reload-or-restart mosquitto"
    );
    let log = || std::fs::read_to_string(host.join("mosquitto.log")).unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status();
    assert!(hup.unwrap().success());
    wait_for("mosquitto reloads", || log().contains("Reloading config."));
    device_gets_alert(&broker, &bundle, &alert_topic).await;

    // A new revocation list takes a restart.
    revoke_device(&keys, DEVICE, &out).unwrap();
    assert_eq!(install(&out, operator.path()), "restart mosquitto");

    // Stopped as systemd stops it, Mosquitto saves where Debian's main
    // config says, as its own user.
    let term = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    assert!(term.unwrap().success());
    let db = host.join("var/lib/mosquitto/mosquitto.db");
    wait_for("mosquitto saves its database", || {
        std::fs::read(&db).is_ok_and(|bytes| {
            bytes
                .windows(alert_topic.len())
                .any(|w| w == alert_topic.as_bytes())
        })
    });
    assert_eq!(std::fs::metadata(&db).unwrap().uid(), mosquitto_uid);

    // No errors, and no warnings but the two the ACL explains.
    let log = log();
    assert!(!log.contains("Error"), "{log}");
    let warnings: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split_once("Warning: ").map(|(_, w)| w))
        .collect();
    let acl = std::fs::read_to_string(out.join(ACL_FILE)).unwrap();
    let topics = Topics::for_fleet(FLEET);
    for warning in &warnings {
        assert!(
            acl.lines()
                .any(|l| l.ends_with(&format!("Warning: {warning}"))),
            "{warning} is not explained in the ACL:\n{acl}"
        );
        assert!(
            warning.contains(&topics.root_filter()) || warning.contains(&topics.alert_filter()),
            "{warning}"
        );
    }
    assert_eq!(warnings.len(), 4, "two at start, two at the reload:\n{log}");
}
