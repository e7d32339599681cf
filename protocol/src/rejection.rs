//! Why a document was refused. Each reason has a stable machine-readable
//! code (docs/protocol.md §13) that devices put in their events.

/// A refused document, with its reason code and a human explanation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("envelope of {0} bytes exceeds the 1 MiB cap")]
    TooLarge(usize),
    #[error("malformed: {0}")]
    Malformed(String),
    #[error("bad signature from key {0}")]
    BadSignature(String),
    #[error("{valid} valid signature(s) from the {role} role, {threshold} required")]
    Threshold {
        role: &'static str,
        valid: usize,
        threshold: usize,
    },
    #[error("version {got} is not newer than the accepted version {have}")]
    Rollback { have: u64, got: u64 },
    #[error("expired at {0}")]
    Expired(String),
    #[error("document is for fleet {got:?}, this is fleet {want:?}")]
    WrongFleet { want: String, got: String },
    #[error("document targets {0:?}, which is not this device or one of its groups")]
    WrongTarget(String),
    #[error("unsafe URL {0:?}")]
    UnsafeUrl(String),
    #[error(
        "live source {0:?} is not authenticated (https, rtsps or srt with a passphrase); \
         this device's config does not allow plaintext live sources (allow_plaintext_live)"
    )]
    PlaintextLive(String),
    #[error("command {0:?} was already received")]
    Replay(String),
    #[error("issued at {issued_at}, implausibly far ahead of this device's time {now}")]
    IssuedInFuture { issued_at: String, now: String },
}

impl Rejection {
    /// The stable reason code reported in events.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::TooLarge(_) => "too_large",
            Rejection::Malformed(_) => "malformed",
            Rejection::BadSignature(_) => "bad_signature",
            Rejection::Threshold { .. } => "threshold",
            Rejection::Rollback { .. } => "rollback",
            Rejection::Expired(_) => "expired",
            Rejection::WrongFleet { .. } => "wrong_fleet",
            Rejection::WrongTarget(_) => "wrong_target",
            Rejection::UnsafeUrl(_) | Rejection::PlaintextLive(_) => "unsafe_url",
            Rejection::Replay(_) => "replay",
            Rejection::IssuedInFuture { .. } => "issued_in_future",
        }
    }
}
