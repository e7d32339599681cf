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
