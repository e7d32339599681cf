//! The demo as `make demo` runs it (the player binary is built beside it).

use std::process::Command;

/// openh264's end-of-video drain error is not shown to whoever runs the
/// demo (it is harmless: the clips are whole), and the demo still plays.
#[test]
fn the_demo_prints_no_encoder_noise() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_phare-demo"))
        .args(["--headless", "--duration-s", "3", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("published a signed assignment"), "{stdout}");
    assert!(!stderr.contains("[OpenH264]"), "{stderr}");
    assert!(std::fs::read_dir(dir.path().join("media")).unwrap().count() >= 3);
}
