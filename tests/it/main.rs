mod api;
mod cli;
mod detect;
mod execute;
mod generate;
#[cfg(feature = "kafka")]
mod kafka;
#[cfg(feature = "kafka")]
mod stream;
mod templates;
