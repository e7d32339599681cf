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
pub mod trust;
pub mod watchdog;

// The configuration schema and broker credentials live in `phare-common`,
// which `phare` shares without linking GStreamer; their paths stay here.
pub use phare_common::{config, tls};
