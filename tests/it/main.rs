mod cli;
mod generate;
#[cfg(feature = "kafka")]
mod kafka;
mod templates;
