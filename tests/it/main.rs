mod api;
mod cli;
mod detect;
mod generate;
#[cfg(feature = "kafka")]
mod kafka;
mod templates;
