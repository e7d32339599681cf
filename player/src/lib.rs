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
pub mod outbox;
pub mod overlay;
pub mod power;
pub mod render;
pub mod report;
pub mod schedule;
pub mod simulate;
pub mod store;
pub mod tls;
pub mod trust;
pub mod watchdog;
