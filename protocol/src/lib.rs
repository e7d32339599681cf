//! The Phare wire protocol, shared by the player and the operator tool.
//!
//! Everything here is sans-IO: no sockets, no files, no clocks. Callers pass
//! bytes and instants in and get verified documents or a [`Rejection`] out,
//! which keeps the trust rules unit-testable and identical on both sides.
//!
//! - [`keys`]: Ed25519 signing keys and key ids.
//! - [`envelope`]: DSSE envelopes (sign, parse with the size cap).
//! - [`document`]: the signed documents (`root`, `assignment`, `alert`, `command`).
//! - [`verify`]: role thresholds and root rotation.
//! - [`topics`]: MQTT topic names.
//! - [`rejection`]: machine-readable reasons a document is refused.
//! - [`report`]: what a device tells the operator (status, events, proof
//!   of play, command responses), written by one side and read by the other.

pub mod broker;
pub mod document;
pub mod envelope;
pub mod keys;
pub mod members;
pub mod rejection;
pub mod report;
pub mod schedule;
pub mod topics;
pub mod verify;

pub use document::{
    Action, Alert, AssetEntry, AssetId, Assignment, Command, PlaylistItem, RoleName, Root, Target,
};
pub use envelope::{Envelope, MAX_ENVELOPE_BYTES};
pub use keys::{SigningKey, keyid_of};
pub use rejection::Rejection;
