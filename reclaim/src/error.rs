//! Errors of the reclaim crate.

/// A policy that cannot be used, an audit trail that cannot be written, or
/// an executor that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The policy file does not parse or is inconsistent.
    #[error("invalid policy: {0}")]
    Policy(String),
    /// Writing the audit trail failed; actions must not proceed unaudited.
    #[error("cannot write audit log: {0}")]
    Audit(#[from] std::io::Error),
    /// An executor could not carry out an action: the system it drives
    /// answered with an error or could not be reached.
    #[error("{executor} executor: {message}")]
    Execution {
        /// `docker`, `object_store`, `webhook`, `log`.
        executor: &'static str,
        /// What went wrong, naming the object.
        message: String,
    },
}

impl Error {
    /// An execution error of `executor`.
    pub fn exec(executor: &'static str, message: impl Into<String>) -> Error {
        Error::Execution {
            executor,
            message: message.into(),
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
