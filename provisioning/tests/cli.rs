//! The operator tool as a user runs it.

use std::process::Command;

/// A user's mistake prints the error and its causes, not a backtrace, even
/// where the machine sets `RUST_BACKTRACE=1`.
#[test]
fn a_user_error_is_a_message_not_a_backtrace() {
    let nowhere = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_phare"))
        .args(["keys", "rotate", "--role", "publisher", "--dir"])
        .arg(nowhere.path().join("keys"))
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(!stderr.to_lowercase().contains("backtrace"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}

/// The README's first signing command names `keys/publisher.pk8`; key files
/// are `<role>-<key id>.pk8`: the error lists the keys that are there.
#[test]
fn a_missing_key_file_lists_the_keys_there() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let phare = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_phare"));
        command.current_dir(dir.path());
        command
    };
    let init = phare()
        .args(["keys", "init", "--fleet", "acme", "--dir", "keys"])
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    std::fs::write(dir.path().join("lobby.json"), "{}").unwrap();
    let output = phare()
        .args([
            "sign",
            "--kind",
            "assignment",
            "--key",
            "keys/publisher.pk8",
            "lobby.json",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("keys/publisher.pk8 does not exist"),
        "{stderr}"
    );
    let publisher = std::fs::read_dir(&keys)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .find(|name| name.starts_with("publisher-"))
        .unwrap();
    assert!(stderr.contains(&format!("keys/{publisher}")), "{stderr}");
}

/// A folder with a fleet's keyring, and the tool run in it.
struct Workdir(tempfile::TempDir);

impl Workdir {
    fn with_keys() -> Workdir {
        let dir = Workdir(tempfile::tempdir().unwrap());
        dir.ok(&["keys", "init", "--fleet", "acme", "--dir", "keys"]);
        dir
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_phare"))
            .current_dir(self.0.path())
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{args:?}: {stderr}");
        stderr.into_owned()
    }

    /// The error of a command that must fail.
    fn refused(&self, args: &[&str]) -> String {
        let output = self.run(args);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        stderr
    }

    /// The file name of the first key of `role` in the keyring.
    fn key(&self, role: &str) -> String {
        let mut names: Vec<String> = std::fs::read_dir(self.0.path().join("keys"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().into_string().unwrap())
            .filter(|name| name.starts_with(&format!("{role}-")) && name.ends_with(".pk8"))
            .collect();
        names.sort();
        format!("keys/{}", names[0])
    }

    fn write(&self, name: &str, document: &serde_json::Value) {
        std::fs::write(self.0.path().join(name), document.to_string()).unwrap();
    }
}

fn lobby() -> serde_json::Value {
    let now = jiff::Timestamp::now();
    serde_json::json!({
        "kind": "assignment", "fleet": "acme", "target": "group:lobby", "version": 1,
        "issued_at": now, "expires_at": now.checked_add(jiff::SignedDuration::from_hours(48)).unwrap(),
        "assets": {}, "playlists": {"main": []}, "default_playlist": "main",
    })
}

/// What an admin got signed by mistake: each is refused with the rule it
/// breaks and how to fix it, and no envelope is written.
#[test]
fn sign_refuses_what_devices_would_refuse() {
    let dir = Workdir::with_keys();
    dir.write("lobby.json", &lobby());
    dir.ok(&[
        "sign",
        "--keyring",
        "keys",
        "lobby.json",
        "-o",
        "lobby.env.json",
    ]);

    let edits: [(&str, serde_json::Value, &str); 5] = [
        (
            "expires_at",
            "2026-01-01T00:00:00Z".into(),
            "expires_at 2026-01-01T00:00:00Z",
        ),
        (
            "fleet",
            "acm".into(),
            "fleet \"acm\" is not this keyring's fleet \"acme\"",
        ),
        (
            "schedule",
            serde_json::json!([{"playlist": "main", "days": ["thurs"]}]),
            "unknown day \"thurs\"",
        ),
        (
            "schedule",
            serde_json::json!([{"playlist": "main", "start": "25:30", "end": "26:00"}]),
            "start \"25:30\" is not HH:MM",
        ),
        ("duraton_ms", 1.into(), "unknown member `duraton_ms`"),
    ];
    for (field, value, reason) in edits {
        let mut document = lobby();
        document[field] = value;
        dir.write("bad.json", &document);
        let why = dir.refused(&[
            "sign",
            "--keyring",
            "keys",
            "bad.json",
            "-o",
            "bad.env.json",
        ]);
        assert!(
            why.contains("not signing bad.json: devices would refuse it"),
            "{why}"
        );
        assert!(why.contains(reason), "{field}: {why}");
        assert!(!dir.0.path().join("bad.env.json").exists());
    }

    let operator = dir.key("operator");
    let why = dir.refused(&[
        "sign",
        "--kind",
        "assignment",
        "--key",
        &operator,
        "lobby.json",
    ]);
    assert!(why.contains("is the fleet's operator key"), "{why}");
    let root = dir.key("root");
    let why = dir.refused(&["sign", "--key", &root, "lobby.json"]);
    assert!(why.contains("is the fleet's root key"), "{why}");

    // A key holder kept a copy of the publisher key the fleet rotated away.
    let path = |name: &str| dir.0.path().join(name);
    std::fs::copy(path(&dir.key("publisher")), path("old-publisher.pk8")).unwrap();
    dir.ok(&["keys", "rotate", "--dir", "keys", "--role", "publisher"]);
    let why = dir.refused(&["sign", "--key", "old-publisher.pk8", "lobby.json"]);
    assert!(why.contains("is not in root version 2"), "{why}");
}

/// Offline, `--version N --issued-now` rewrite the payload file and sign
/// exactly its bytes; flags that would change an envelope already signed,
/// or a bump with no broker to read, are refused; a new assignment never
/// replaces a file.
#[test]
fn signing_sets_the_version_in_the_file_it_signs() {
    let dir = tempfile::tempdir().unwrap();
    let phare = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_phare"))
            .current_dir(dir.path())
            .args(args)
            .output()
            .unwrap()
    };
    let ok = |output: std::process::Output| {
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    ok(phare(&["keys", "init", "--fleet", "acme", "--dir", "keys"]));
    ok(phare(&[
        "assignment",
        "new",
        "--target",
        "group:lobby",
        "-o",
        "lobby.json",
    ]));
    let written = std::fs::read(dir.path().join("lobby.json")).unwrap();
    let again = phare(&[
        "assignment",
        "new",
        "--target",
        "group:hall",
        "-o",
        "lobby.json",
    ]);
    assert!(!again.status.success());
    assert_eq!(
        std::fs::read(dir.path().join("lobby.json")).unwrap(),
        written
    );

    let signed = phare(&[
        "sign",
        "--keyring",
        "keys",
        "lobby.json",
        "--version",
        "7",
        "--issued-now",
        "-o",
        "lobby.env.json",
    ]);
    ok(signed);
    let file = std::fs::read(dir.path().join("lobby.json")).unwrap();
    let document: serde_json::Value = serde_json::from_slice(&file).unwrap();
    assert_eq!(document["version"], 7);
    let envelope = phare_protocol::Envelope::from_slice(
        &std::fs::read(dir.path().join("lobby.env.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(envelope.payload_bytes().unwrap(), file);

    for refused in [
        &["sign", "--keyring", "keys", "lobby.json", "--bump"][..],
        &[
            "sign",
            "--keyring",
            "keys",
            "--add-to",
            "lobby.env.json",
            "--version",
            "8",
        ],
        &[
            "sign",
            "--keyring",
            "keys",
            "--add-to",
            "lobby.env.json",
            "--issued-now",
        ],
    ] {
        let output = phare(refused);
        assert_eq!(output.status.code(), Some(2), "{refused:?}: a usage error");
    }
    assert_eq!(std::fs::read(dir.path().join("lobby.json")).unwrap(), file);
}
