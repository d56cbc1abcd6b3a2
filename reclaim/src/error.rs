//! Errors of the reclaim crate.

/// A policy that cannot be used, or an audit trail that cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The policy file does not parse or is inconsistent.
    #[error("invalid policy: {0}")]
    Policy(String),
    /// Writing the audit trail failed; actions must not proceed unaudited.
    #[error("cannot write audit log: {0}")]
    Audit(#[from] std::io::Error),
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
