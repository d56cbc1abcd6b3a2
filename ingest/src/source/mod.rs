//! Sources of raw records.
