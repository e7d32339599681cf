//! What `phare-player` and `phare` share besides the wire protocol
//! (`phare-protocol`): the device's configuration, `player.toml` with its
//! `[display]` and `[mqtt]` sections ([`config`], [`display`], [`tls`]),
//! which `phare` writes and checks in enrolment bundles; connecting to and
//! leaving brokers ([`tls`], [`mqtt`]); files written whole ([`files`]);
//! SQLite schema upgrades ([`sqlite`]); and how the programs end
//! ([`exit_code`]). Nothing here links GStreamer: the operator tool
//! depends on this crate, never on the player.

pub mod config;
pub mod display;
pub mod files;
pub mod mqtt;
pub mod sqlite;
pub mod time;
pub mod tls;

/// How Phare's programs end: a mistake (a bad config, a missing file) is a
/// message naming it, never a backtrace, even with `RUST_BACKTRACE` set as
/// some machines have it: the error and its causes on one line, exit
/// status 1.
pub fn exit_code(outcome: anyhow::Result<()>) -> std::process::ExitCode {
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
