//! The CLI's error type and its mapping to exit codes: 2 for bad input (the database is
//! unchanged), 1 for everything else.

use std::fmt;

/// A failure of a CLI command.
#[derive(Debug)]
pub enum CliError {
    /// Bad input: malformed JSON, invalid filter or name, bad arguments. Exit code 2.
    Input(String),
    /// Any other failure (I/O, SQLite, conflicts). Exit code 1.
    Failure(String),
    /// Standard output was closed (`pocketdb export | head`): stop quietly.
    BrokenPipe,
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Input(_) => 2,
            CliError::Failure(_) => 1,
            CliError::BrokenPipe => 0,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Input(m) | CliError::Failure(m) => f.write_str(m),
            CliError::BrokenPipe => f.write_str("broken pipe"),
        }
    }
}

/// True for errors caused by what the user gave rather than by the system.
pub fn is_input_error(e: &pocketdb::Error) -> bool {
    use pocketdb::Error as E;
    matches!(
        e,
        E::InvalidFilter { .. }
            | E::InvalidUpdate { .. }
            | E::InvalidProjection { .. }
            | E::InvalidSort { .. }
            | E::InvalidDocument(_)
            | E::InvalidName { .. }
            | E::InvalidCommand(_)
            | E::InvalidArgument(_)
            | E::InvalidIndex { .. }
            | E::IndexNotFound { .. }
            | E::DocumentTooLarge { .. }
            | E::Json(_)
            | E::Serde(_)
    )
}

/// True for MongoDB error codes that mean the command itself was bad input.
pub fn is_input_code(code: i64) -> bool {
    matches!(
        code,
        2 | 9 | 14 | 16 | 27 | 59 | 67 | 72 | 73 | 197 | 10334 | 40414 | 40415
    )
}

impl From<pocketdb::Error> for CliError {
    fn from(e: pocketdb::Error) -> CliError {
        let message = pocketdb::command::error_message(&e);
        if is_input_error(&e) {
            CliError::Input(message)
        } else {
            CliError::Failure(message)
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> CliError {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            CliError::BrokenPipe
        } else {
            CliError::Failure(format!("i/o: {e}"))
        }
    }
}

/// Shorthand for results of CLI commands.
pub type CliResult<T = ()> = Result<T, CliError>;
