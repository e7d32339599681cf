//! `phare`, the operator tool: keys, signing, publishing, the fleet's
//! certificate authority and broker setup, device enrolment and commands,
//! proof of play. The library part is what the end-to-end tests and the
//! demo (`phare-demo`) drive too, so that they exercise the same code
//! operators run. It links no GStreamer: what it shares with the player is
//! in `phare-common`.

pub mod alert;
pub mod asset;
pub mod authoring;
pub mod ca;
pub mod command;
pub mod connect;
pub mod enrol;
pub mod fleet;
pub mod keys;
pub mod mosquitto;
pub mod pop;
pub mod preflight;
pub mod publish;
pub mod registry;
pub mod revocation;
pub mod terminal;
