//! `phare`, the operator tool: keys, signing, publishing, the fleet's
//! certificate authority and broker setup, device enrolment and commands,
//! and the demo. The library part is what the end-to-end tests drive too,
//! so that they exercise the same code operators run.

pub mod alert;
pub mod asset;
pub mod authoring;
pub mod broker;
pub mod ca;
pub mod command;
pub mod connect;
pub mod demo;
pub mod enrol;
pub mod files;
pub mod fleet;
pub mod keys;
pub mod media;
pub mod mosquitto;
pub mod origin;
pub mod pop;
pub mod preflight;
pub mod publish;
pub mod registry;
pub mod revocation;
pub mod terminal;
