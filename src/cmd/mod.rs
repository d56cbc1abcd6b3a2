//! One module per subcommand: its flags (`Args`) and its `run`.

pub mod detect;
pub mod generate;
pub mod replay;
pub mod serve;
pub mod templates;
