//! The `phare` subcommands that grew past a few lines: writing
//! assignments, enrolment and commands to devices, the broker setup, and
//! the broker flags they share with the rest of the tool.

pub mod authoring;
pub mod broker;
pub mod device;
pub mod flags;
pub mod sign;
