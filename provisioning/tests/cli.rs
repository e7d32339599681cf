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
