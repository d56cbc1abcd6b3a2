//! Errors that stop a source (as opposed to bad records, which are
//! dead-lettered and never stop anything).

use std::path::PathBuf;

/// Something a user must fix: a path that does not exist, an unknown format
/// name, a header format that does not compile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading a file or directory failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A format name that no parser answers to.
    #[error("unknown format {name:?}; known formats: {known}")]
    UnknownFormat {
        /// What the user wrote.
        name: String,
        /// The accepted names, comma separated.
        known: String,
    },
    /// A header format (`<Date> <Time> <Level> <Component>: <Content>`) that
    /// cannot be compiled.
    #[error("invalid log format {format:?}: {reason}")]
    InvalidLogFormat {
        /// The format as given.
        format: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A masking regular expression that does not compile.
    #[error("invalid mask regex {pattern:?}: {source}")]
    InvalidMask {
        /// The pattern.
        pattern: String,
        /// The regex error.
        #[source]
        source: regex::Error,
    },
    /// Template-miner state that cannot be loaded.
    #[error("cannot load template state: {0}")]
    State(String),
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
