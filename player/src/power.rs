//! Screen power over HDMI-CEC, where the hardware has it.
//!
//! `cec-ctl` (v4l-utils) puts the TV to standby or wakes it; on screens
//! without CEC, or without `cec-ctl`, turning the pipeline to NULL is what
//! blanks the output (the renderer does that), and this does nothing.

use std::process::Stdio;

/// Asks the screen to power on or off, in the background; failures are
/// logged, never fatal.
pub fn set_screen_power(on: bool) {
    let Some(cec_ctl) = find_cec_ctl() else {
        return;
    };
    let (what, args): (&str, &[&str]) = if on {
        ("wake", &["--to", "0", "--image-view-on"])
    } else {
        ("standby", &["--to", "0", "--standby"])
    };
    let child = tokio::process::Command::new(cec_ctl)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    tokio::spawn(async move {
        match child {
            Ok(child) => match child.wait_with_output().await {
                Ok(out) if out.status.success() => tracing::info!("HDMI-CEC {what} sent"),
                Ok(out) => {
                    tracing::warn!(stderr = %String::from_utf8_lossy(&out.stderr).trim(), "HDMI-CEC {what} failed")
                }
                Err(e) => tracing::warn!(error = %e, "HDMI-CEC {what} failed"),
            },
            Err(e) => tracing::warn!(error = %e, "cannot run cec-ctl"),
        }
    });
}

/// `cec-ctl` if installed and a CEC device exists.
fn find_cec_ctl() -> Option<&'static str> {
    let has_device = std::fs::read_dir("/dev")
        .ok()?
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().starts_with("cec"));
    let installed = ["/usr/bin/cec-ctl", "/bin/cec-ctl"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    installed.filter(|_| has_device)
}
