//! The player under systemd (player/debian/phare-player.service is
//! `Type=notify` with `WatchdogSec=`): READY=1 once it plays from its
//! cache, with no network; WATCHDOG=1 from its agent loop at half the
//! period systemd asked for; STOPPING=1 on SIGTERM.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use phare_tests::{DEVICE, FLEET, Fleet, TIMEOUT, player_binary};

/// The next notification within `timeout`, if any.
fn next(socket: &UnixDatagram, timeout: Duration) -> Option<String> {
    socket.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = [0u8; 4096];
    let len = socket.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..len]).into_owned())
}

#[test]
fn the_player_notifies_systemd_and_feeds_its_watchdog() {
    let fleet = Fleet::new();
    let dir = tempfile::tempdir().unwrap();
    let notify = dir.path().join("notify");
    let socket = UnixDatagram::bind(&notify).unwrap();
    let config = dir.path().join("player.toml");
    // No broker answers: the player must start all the same.
    std::fs::write(
        &config,
        format!(
            "device_id = \"{DEVICE}\"\nfleet = \"{FLEET}\"\nbrokers = [\"mqtt://127.0.0.1:9\"]\n\
             root = {:?}\ndata_dir = {:?}\nvideo_sink = \"fake\"\n",
            fleet.root_path().display().to_string(),
            dir.path().join("data").display().to_string(),
        ),
    )
    .unwrap();
    let mut player = Command::new(player_binary())
        .arg("--config")
        .arg(&config)
        .env("NOTIFY_SOCKET", &notify)
        .env("WATCHDOG_USEC", "400000") // pings every 0.2 s
        .env_remove("WATCHDOG_PID")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let first = next(&socket, TIMEOUT).expect("no notification from the player");
    assert!(first.lines().any(|l| l == "READY=1"), "{first:?}");

    let start = Instant::now();
    let mut pings = 0;
    while start.elapsed() < Duration::from_secs(2) {
        let message = next(&socket, Duration::from_secs(1)).expect("the pings stopped");
        pings += message.lines().filter(|l| *l == "WATCHDOG=1").count();
    }
    assert!(
        pings >= 4,
        "{pings} watchdog pings in 2 s, at a 0.2 s period"
    );

    Command::new("kill")
        .arg("-TERM")
        .arg(player.id().to_string())
        .status()
        .unwrap();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let message = next(&socket, Duration::from_secs(1));
        if message.is_some_and(|m| m.lines().any(|l| l == "STOPPING=1")) {
            break;
        }
        assert!(Instant::now() < deadline, "no STOPPING=1 after SIGTERM");
    }
    assert!(player.wait().unwrap().success());
}
