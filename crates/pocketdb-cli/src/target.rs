//! Which database a command works on: one file (`--db PATH`) or a database of a client
//! directory (`--dir DIR --database NAME`).

use crate::error::{CliError, CliResult};
use clap::Args;
use pocketdb::{Client, Database};
use std::path::PathBuf;

/// Default client directory.
pub const DEFAULT_DIR: &str = "./pocketdb-data";
/// Default database name under `--dir`.
pub const DEFAULT_DATABASE: &str = "test";

/// Database selection, shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// A single database file (instead of --dir/--database)
    #[arg(long, global = true, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// A directory of databases, one SQLite file each [default: ./pocketdb-data]
    #[arg(long, global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The database in --dir [default: test]
    #[arg(long, global = true, value_name = "NAME")]
    pub database: Option<String>,
}

/// An opened database, with the client it came from when there is one.
pub struct Target {
    /// The client directory (`None` with `--db`).
    pub client: Option<Client>,
    /// The current database.
    pub db: Database,
}

impl DbArgs {
    /// Checks the combination of options without touching the disk.
    pub fn validate(&self) -> CliResult {
        if self.db.is_some() && (self.dir.is_some() || self.database.is_some()) {
            return Err(CliError::Input(
                "--db cannot be combined with --dir or --database".to_string(),
            ));
        }
        Ok(())
    }

    /// Opens the selected database (creating it if needed).
    pub fn open(&self) -> CliResult<Target> {
        self.validate()?;
        if let Some(path) = &self.db {
            return Ok(Target {
                client: None,
                db: Database::open(path)?,
            });
        }
        let dir = self
            .dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR));
        let client = Client::open(dir)?;
        let db = client.database(self.database.as_deref().unwrap_or(DEFAULT_DATABASE))?;
        Ok(Target {
            client: Some(client),
            db,
        })
    }
}
