//! `phare-player`: the device daemon.
//!
//! See ARCHITECTURE.md for the map. In short: [`agent`] owns the moving
//! state and talks to [`link`] (MQTT), [`cache`] (content store and
//! fetcher) and [`render`] (GStreamer); [`trust`] and the protocol crate
//! decide what is accepted; [`store`] makes it durable; [`report`] says what
//! happens.

pub mod agent;
pub mod alarm;
pub mod cache;
pub mod clock;
pub mod config;
pub mod display;
pub mod link;
pub mod migrations;
pub mod outbox;
pub mod overlay;
pub mod power;
pub mod render;
pub mod report;
pub mod simulate;
pub mod store;
pub mod tls;
pub mod trust;
pub mod watchdog;

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
