//! `remedy run`: the streaming service. [`task`] is the engine of one
//! partition number (no Kafka in it); `kafka` drives tasks from a consumer
//! group, produces what they find and checkpoints them to a changelog
//! topic.

pub mod config;
pub mod kafka;
