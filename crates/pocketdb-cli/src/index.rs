//! `pocketdb index create|list|drop` and `pocketdb explain`.

use crate::error::{CliError, CliResult};
use crate::output::line;
use crate::relaxed;
use clap::Subcommand;
use pocketdb::{Database, IndexBuildPhase, IndexOptions, IndexProgress};
use serde_json::Value;
use std::io::{self, IsTerminal, Write};

/// The `index` subcommands.
#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// Create an index and print its name (a progress bar on a terminal's stderr)
    Create {
        /// Target collection
        #[arg(long, short)]
        collection: String,
        /// Key specification, e.g. '{email: 1}' or '{status: 1, created_at: -1}'
        #[arg(long)]
        keys: String,
        /// Index name [default: MongoDB's, e.g. email_1]
        #[arg(long)]
        name: Option<String>,
        /// Reject duplicate keys (missing fields count as null)
        #[arg(long)]
        unique: bool,
        /// Skip documents lacking every key field (for uniqueness)
        #[arg(long)]
        sparse: bool,
        /// Partial filter expression, e.g. '{active: true}'
        #[arg(long)]
        partial: Option<String>,
        /// TTL: delete documents whose date at the key is older than this many seconds
        #[arg(long, value_name = "SECONDS")]
        expire_after: Option<i64>,
    },
    /// List the indexes of a collection, one JSON object per line
    List {
        /// Target collection
        #[arg(long, short)]
        collection: String,
    },
    /// Drop an index by name (or every index but _id_ with --all)
    Drop {
        /// Target collection
        #[arg(long, short)]
        collection: String,
        /// Index name
        #[arg(long, required_unless_present = "all")]
        name: Option<String>,
        /// Drop every index but _id_
        #[arg(long, conflicts_with = "name")]
        all: bool,
    },
}

fn parse(text: &str, what: &str) -> CliResult<Value> {
    relaxed::parse_document(text, what).map_err(CliError::Input)
}

/// Index commands whose arguments are parsed, ready to run on a database.
pub struct Prepared(IndexCommand, Option<(Value, IndexOptions)>);

/// Parses the JSON arguments before the database is opened.
pub fn prepare(cmd: IndexCommand) -> CliResult<Prepared> {
    let parsed = match &cmd {
        IndexCommand::Create {
            keys,
            name,
            unique,
            sparse,
            partial,
            expire_after,
            ..
        } => {
            let keys = parse(keys, "--keys")?;
            let options = IndexOptions {
                name: name.clone(),
                unique: *unique,
                sparse: *sparse,
                partial_filter_expression: partial
                    .as_ref()
                    .map(|p| parse(p, "--partial"))
                    .transpose()?,
                expire_after_seconds: *expire_after,
            };
            Some((keys, options))
        }
        _ => None,
    };
    Ok(Prepared(cmd, parsed))
}

/// Runs a prepared index command.
pub fn run(db: &Database, prepared: Prepared) -> CliResult {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    match prepared {
        Prepared(IndexCommand::Create { collection, .. }, Some((keys, options))) => {
            let coll = db.collection::<Value>(&collection);
            let bar = io::stderr().is_terminal();
            let name = coll.create_index_with_progress(keys, options, |p| {
                if bar {
                    draw(&p);
                }
            })?;
            if bar {
                eprintln!();
            }
            line(&mut out, &name)?;
        }
        Prepared(IndexCommand::List { collection }, _) => {
            for info in db.collection::<Value>(&collection).list_indexes()? {
                line(&mut out, &info.to_json().to_string())?;
            }
        }
        Prepared(
            IndexCommand::Drop {
                collection,
                name,
                all,
            },
            _,
        ) => {
            let coll = db.collection::<Value>(&collection);
            if all {
                let n = coll.drop_indexes()?;
                line(&mut out, &format!("dropped {n}"))?;
            } else if let Some(name) = name {
                coll.drop_index(&name)?;
                line(&mut out, &format!("dropped {name}"))?;
            }
        }
        Prepared(IndexCommand::Create { .. }, None) => {
            return Err(CliError::Failure(
                "index arguments were not parsed".to_string(),
            ))
        }
    }
    Ok(())
}

/// One progress-bar frame on stderr: `[#####-----]  52% scanning 520000/1000000`.
fn draw(p: &IndexProgress) {
    let phase = match p.phase {
        IndexBuildPhase::Scanning => "scanning",
        IndexBuildPhase::Multikey => "multikey",
        IndexBuildPhase::Sorting => "building",
        IndexBuildPhase::Done => "done",
    };
    let frac = if p.total == 0 {
        1.0
    } else {
        p.done as f64 / p.total as f64
    };
    let filled = (frac * 30.0).round() as usize;
    let mut err = io::stderr().lock();
    let _ = write!(
        err,
        "\r[{}{}] {:>3.0}% {phase:<8} {}/{}",
        "#".repeat(filled.min(30)),
        "-".repeat(30 - filled.min(30)),
        frac * 100.0,
        p.done,
        p.total
    );
    let _ = err.flush();
}

/// `pocketdb explain`: the plan as one JSON object.
pub fn explain(
    db: &Database,
    collection: &str,
    filter: Value,
    sort: Option<Value>,
    limit: Option<u64>,
    hint: Option<Value>,
) -> CliResult {
    let mut cursor = db.collection::<Value>(collection).find(filter)?;
    if let Some(s) = sort {
        cursor = cursor.sort(s);
    }
    if let Some(l) = limit {
        cursor = cursor.limit(i64::try_from(l).unwrap_or(i64::MAX));
    }
    if let Some(h) = hint {
        cursor = cursor.hint(h);
    }
    let plan = cursor.explain()?;
    line(&mut io::stdout().lock(), &plan.to_json().to_string())?;
    Ok(())
}
