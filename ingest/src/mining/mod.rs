//! Streaming log template mining.
