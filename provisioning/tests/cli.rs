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
