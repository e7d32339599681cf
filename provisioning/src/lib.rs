//! `phare`, the operator tool: keys, signing, publishing, and the demo.
//! The library part is what the end-to-end tests drive too, so that they
//! exercise the same code operators run.

pub mod asset;
pub mod broker;
pub mod demo;
pub mod fleet;
pub mod keys;
pub mod media;
pub mod origin;
pub mod pop;
pub mod publish;
