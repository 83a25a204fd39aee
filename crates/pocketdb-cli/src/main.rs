//! `pocketdb`: the command-line tool and shell of the pocketdb document database.
//!
//! Exit codes: 0 success, 1 failure, 2 bad input (the database is left unchanged).

mod bench;
mod error;
mod import;
mod index;
mod ops;
mod output;
mod relaxed;
mod shell;
mod target;

use clap::{Parser, Subcommand};
use error::{is_input_code, CliError, CliResult};
use output::line;
use pocketdb::command::run_command;
use pocketdb::{FindSpec, UpdateOptions};
use serde_json::Value;
use std::io::{self, BufRead, Write};
use target::DbArgs;

/// pocketdb: an embedded document database on SQLite with MongoDB semantics.
#[derive(Debug, Parser)]
#[command(name = "pocketdb", version, about)]
struct Cli {
    #[command(flatten)]
    target: DbArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Interactive shell in the style of mongosh (statements from stdin when piped)
    Shell,
    /// Import NDJSON or a JSON array into a collection
    Import {
        /// Target collection
        #[arg(long, short)]
        collection: String,
        /// Input file; `-` or nothing reads stdin
        file: Option<String>,
        /// Abort at the first bad document instead of reporting it and going on
        #[arg(long)]
        stop_on_error: bool,
        /// Documents per insert batch
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        batch_size: u32,
        /// Bulk-load mode: commits are not synced until the import ends (faster; an OS
        /// crash or power loss during the import may lose it)
        #[arg(long)]
        bulk: bool,
    },
    /// Print matching documents, one compact JSON document per line
    Find {
        /// Target collection
        #[arg(long, short)]
        collection: String,
        /// Query filter, e.g. '{age: {$gt: 30}}'
        #[arg(long)]
        filter: Option<String>,
        /// Sort, e.g. '{age: -1}'
        #[arg(long)]
        sort: Option<String>,
        /// Documents to skip
        #[arg(long)]
        skip: Option<u64>,
        /// Maximum number of documents
        #[arg(long)]
        limit: Option<u64>,
        /// Projection, e.g. '{name: 1, _id: 0}'
        #[arg(long)]
        projection: Option<String>,
    },
    /// Run MongoDB database commands and print their replies as JSON lines
    Run {
        /// The command document, e.g. '{count: "users"}'; without it, one command per
        /// line is read from stdin
        command: Option<String>,
    },
    /// Count matching documents
    Count {
        /// Target collection
        #[arg(long, short)]
        collection: String,
        /// Query filter
        #[arg(long)]
        filter: Option<String>,
    },
    /// Print the distinct values of a field, one JSON value per line
    Distinct {
        /// Target collection
        #[arg(long, short)]
        collection: String,
        /// Field path, e.g. 'address.city'
        #[arg(long)]
        field: String,
        /// Query filter
        #[arg(long)]
        filter: Option<String>,
    },
    /// Update (or replace) matching documents
    Update {
        /// Target collection
        #[arg(long, short)]
        collection: String,
        /// Query filter
        #[arg(long)]
        filter: String,
        /// Update operators ('{$set: {a: 1}}') or a replacement document
        #[arg(long)]
        update: String,
        /// Update every match instead of the first
        #[arg(long)]
        many: bool,
        /// Insert a document when nothing matches
        #[arg(long)]
        upsert: bool,
    },
    /// Delete matching documents
    Delete {
        /// Target collection
        #[arg(long, short)]
        collection: String,
        /// Query filter ('{}' for all)
        #[arg(long)]
        filter: String,
        /// Delete every match instead of the first
        #[arg(long)]
        many: bool,
    },
    /// Write a collection as NDJSON to stdout
    Export {
        /// Source collection
        #[arg(long, short)]
        collection: String,
        /// Query filter
        #[arg(long)]
        filter: Option<String>,
    },
    /// List the collections of the database
    Collections,
    /// Print change events as NDJSON (MongoDB's change-event shape) until interrupted
    Watch {
        /// Collection to watch; without it, every collection of the database
        #[arg(long, short)]
        collection: Option<String>,
        /// Filter over the change event, e.g. '{operationType: "insert"}' or
        /// '{"fullDocument.status": "active"}'
        #[arg(long)]
        filter: Option<String>,
        /// Resume right after this token (the `_id` of an event printed before: a
        /// number, or for a sharded or partitioned collection a JSON object); 0
        /// replays the whole retained change log of a plain collection or database
        #[arg(long, value_name = "TOKEN")]
        resume_after: Option<String>,
        /// Also attach the current document to update events
        #[arg(long)]
        update_lookup: bool,
        /// Stop after this many events
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Create, list and drop indexes
    Index {
        #[command(subcommand)]
        action: index::IndexCommand,
    },
    /// Print the query plan as one JSON object ("index": the index used, or null for a
    /// collection scan)
    Explain {
        /// Target collection
        #[arg(long, short)]
        collection: String,
        /// Query filter
        #[arg(long)]
        filter: Option<String>,
        /// Sort, e.g. '{age: -1}'
        #[arg(long)]
        sort: Option<String>,
        /// Maximum number of documents
        #[arg(long)]
        limit: Option<u64>,
        /// Force an index: its name, or its key specification
        #[arg(long)]
        hint: Option<String>,
    },
    /// List the databases of the directory
    Databases,
    /// Online backup: one database to a file, or (--dir without --database) every
    /// database into a directory
    Backup {
        /// Target file or directory
        #[arg(long, value_name = "PATH")]
        to: std::path::PathBuf,
    },
    /// Restore a backup file into a database, or a backup directory into --dir
    Restore {
        /// Backup file or directory
        #[arg(long, value_name = "PATH")]
        from: std::path::PathBuf,
    },
    /// Rebuild the database file(s), returning free space
    Vacuum,
    /// Check the database file(s): exit 0 when healthy, 1 with a report otherwise
    Check,
    /// Sizes, documents per collection, index sizes, cache hit ratio, slow queries
    Stats {
        /// One JSON document per database instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Run benchmark workloads through pocketdb and raw rusqlite (same documents, same
    /// pragmas) and print throughputs and their ratio; database files go to --dir (a
    /// temporary directory by default). Build with --release for meaningful numbers
    Bench {
        /// Workload name, a comma-separated list, or `all`
        #[arg(long, short, default_value = "all")]
        workload: String,
        /// Documents loaded (or inserted) per workload
        #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
        docs: u64,
        /// Operations measured [default: depends on the workload]
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        ops: Option<u64>,
        /// Writer threads for concurrent workloads (group-commit) [default: 16]
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
        threads: Option<u64>,
        /// One JSON object per workload instead of a line of text
        #[arg(long)]
        json: bool,
        /// Let SQLite checkpoint the WAL in the committing writer (as raw rusqlite does)
        /// instead of pocketdb's background checkpoint thread
        #[arg(long)]
        sqlite_checkpoints: bool,
    },
    /// Run one SQL statement (read-only unless --write) and print rows as JSON lines;
    /// see the storage layout in the pocketdb::maintenance docs
    Sql {
        /// The statement
        query: String,
        /// A parameter for the next placeholder (JSON), repeatable
        #[arg(long = "param", value_name = "JSON")]
        params: Vec<String>,
        /// Allow statements that write (bypassing the change log and validation)
        #[arg(long)]
        write: bool,
    },
}

fn main() {
    let cli = Cli::parse();
    let code = match execute(cli) {
        Ok(code) => code,
        Err(CliError::BrokenPipe) => 0,
        Err(e) => {
            eprintln!("error: {}", e.to_string().replace('\n', " "));
            e.exit_code()
        }
    };
    std::process::exit(code);
}

fn input(text: &str, what: &str) -> CliResult<Value> {
    relaxed::parse_document(text, what).map_err(CliError::Input)
}

fn optional(text: Option<&String>, what: &str) -> CliResult<Option<Value>> {
    text.map(|t| input(t, what)).transpose()
}

fn filter_or_all(text: Option<&String>) -> CliResult<Value> {
    Ok(optional(text, "--filter")?.unwrap_or_else(|| Value::Object(Default::default())))
}

/// Runs a subcommand; returns the exit code on success paths that still report
/// something (import with failures, `run` with an error reply).
fn execute(cli: Cli) -> CliResult<i32> {
    // Every argument is parsed before the database is opened, so bad input never
    // touches it.
    cli.target.validate()?;
    let stdout = io::stdout();
    match cli.command {
        Command::Shell => {
            shell::run(cli.target.open()?)?;
        }
        Command::Import {
            collection,
            file,
            stop_on_error,
            batch_size,
            bulk,
        } => {
            let db = cli.target.open()?.db;
            let coll = db.resolve_collection(&collection)?;
            let options = import::ImportOptions {
                batch_size: batch_size as usize,
                stop_on_error,
            };
            // Settings come back when the guard drops, whatever the import's outcome.
            let bulk_mode = if bulk { Some(db.bulk_load()?) } else { None };
            let summary = import::import(&*coll, file.as_deref(), &options);
            if let Some(guard) = bulk_mode {
                guard.finish()?;
            }
            let summary = summary?;
            line(
                &mut stdout.lock(),
                &format!("inserted {}, failed {}", summary.inserted, summary.failed),
            )?;
            if summary.failed > 0 {
                return Ok(1);
            }
        }
        Command::Find {
            collection,
            filter,
            sort,
            skip,
            limit,
            projection,
        } => {
            let filter = filter_or_all(filter.as_ref())?;
            let sort = optional(sort.as_ref(), "--sort")?;
            let projection = optional(projection.as_ref(), "--projection")?;
            let db = cli.target.open()?.db;
            let spec = FindSpec {
                sort,
                projection,
                skip,
                limit: limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX)),
                allow_disk_use: None,
            };
            print_documents(
                db.resolve_collection(&collection)?
                    .find_with(filter, &spec)?,
            )?;
        }
        Command::Export { collection, filter } => {
            let filter = filter_or_all(filter.as_ref())?;
            let db = cli.target.open()?.db;
            let all = db
                .resolve_collection(&collection)?
                .find_with(filter, &FindSpec::default())?;
            print_documents(all)?;
        }
        Command::Run { command } => {
            return match command {
                Some(text) => {
                    let command = relaxed::parse(&text)
                        .map_err(|e| CliError::Input(format!("command: {e}")))?;
                    let db = cli.target.open()?.db;
                    let reply = run_command(&db, &command);
                    line(&mut stdout.lock(), &reply.to_string())?;
                    Ok(reply_exit_code(&reply))
                }
                None => {
                    let db = cli.target.open()?.db;
                    run_stdin(&db)?;
                    Ok(0)
                }
            };
        }
        Command::Count { collection, filter } => {
            let filter = filter_or_all(filter.as_ref())?;
            let db = cli.target.open()?.db;
            let n = db
                .resolve_collection(&collection)?
                .count_documents(filter)?;
            line(&mut stdout.lock(), &n.to_string())?;
        }
        Command::Distinct {
            collection,
            field,
            filter,
        } => {
            let filter = filter_or_all(filter.as_ref())?;
            let db = cli.target.open()?.db;
            let values = db
                .resolve_collection(&collection)?
                .distinct(&field, filter)?;
            let mut out = stdout.lock();
            for v in values {
                line(&mut out, &v.to_string())?;
            }
        }
        Command::Update {
            collection,
            filter,
            update,
            many,
            upsert,
        } => {
            let filter = input(&filter, "--filter")?;
            let update = input(&update, "--update")?;
            let is_operator = update
                .as_object()
                .and_then(|m| m.keys().next())
                .is_some_and(|k| k.starts_with('$'));
            if many && !is_operator {
                return Err(CliError::Input(
                    "--many needs update operators such as {$set: {...}}; a replacement document replaces one document".to_string(),
                ));
            }
            let db = cli.target.open()?.db;
            let coll = db.resolve_collection(&collection)?;
            let options = UpdateOptions {
                upsert,
                array_filters: None,
            };
            let r = match (is_operator, many) {
                (true, true) => coll.update_many_with(filter, update, &options)?,
                (true, false) => coll.update_one_with(filter, update, &options)?,
                (false, _) => coll.replace_one_with(filter, update, upsert)?,
            };
            let mut text = format!(
                "matched {}, modified {}, upserted {}",
                r.matched_count,
                r.modified_count,
                u8::from(r.upserted_id.is_some())
            );
            if let Some(id) = r.upserted_id {
                text.push_str(&format!(" (_id: {id})"));
            }
            line(&mut stdout.lock(), &text)?;
        }
        Command::Delete {
            collection,
            filter,
            many,
        } => {
            let filter = input(&filter, "--filter")?;
            let db = cli.target.open()?.db;
            let coll = db.resolve_collection(&collection)?;
            let r = if many {
                coll.delete_many(filter)?
            } else {
                coll.delete_one(filter)?
            };
            line(&mut stdout.lock(), &format!("deleted {}", r.deleted_count))?;
        }
        Command::Watch {
            collection,
            filter,
            resume_after,
            update_lookup,
            limit,
        } => {
            let filter = optional(filter.as_ref(), "--filter")?;
            let token = resume_after
                .as_deref()
                .map(|t| {
                    relaxed::parse(t).map_err(|e| CliError::Input(format!("--resume-after: {e}")))
                })
                .transpose()?;
            let db = cli.target.open()?.db;
            let mut options = pocketdb::WatchOptions {
                filter,
                full_document: if update_lookup {
                    pocketdb::FullDocument::UpdateLookup
                } else {
                    pocketdb::FullDocument::Default
                },
                ..pocketdb::WatchOptions::default()
            };
            let spread = match &collection {
                Some(c) => match db.resolve_collection(c)?.kind() {
                    pocketdb::CollectionKind::Plain => None,
                    pocketdb::CollectionKind::Sharded => Some(db.sharded::<Value>(c)?),
                    pocketdb::CollectionKind::Partitioned => {
                        Some((*db.partitioned::<Value>(c)?).clone())
                    }
                },
                None => None,
            };
            let events: Box<dyn Iterator<Item = pocketdb::Result<Value>>> = match spread {
                Some(coll) => {
                    let token = token
                        .map(|t| pocketdb::shard::ShardResumeToken::from_json(&t))
                        .transpose()
                        .map_err(|e| CliError::Input(format!("--resume-after: {e}")))?;
                    let stream = coll.watch_with(options, token.as_ref())?;
                    Box::new(stream.map(|e| e.map(|e| e.to_json())))
                }
                None => {
                    options.resume_after = match token {
                        None => None,
                        Some(t) => Some(t.as_i64().ok_or_else(|| {
                            CliError::Input(format!("--resume-after: expected a number, got {t}"))
                        })?),
                    };
                    let stream = match &collection {
                        Some(c) => db.collection::<Value>(c).watch_with(options)?,
                        None => db.watch_with(options)?,
                    };
                    Box::new(stream.map(|e| e.map(|e| e.to_json())))
                }
            };
            let mut out = stdout.lock();
            let max = limit.unwrap_or(u64::MAX);
            for event in events.take(usize::try_from(max).unwrap_or(usize::MAX)) {
                line(&mut out, &event?.to_string())?;
                out.flush()?;
            }
        }
        Command::Index { action } => {
            let prepared = index::prepare(action)?;
            index::run(&cli.target.open()?.db, prepared)?;
        }
        Command::Explain {
            collection,
            filter,
            sort,
            limit,
            hint,
        } => {
            let filter = filter_or_all(filter.as_ref())?;
            let sort = optional(sort.as_ref(), "--sort")?;
            let hint = match hint {
                Some(h) if h.trim_start().starts_with('{') => Some(input(&h, "--hint")?),
                Some(h) => Some(Value::String(h)),
                None => None,
            };
            let db = cli.target.open()?.db;
            index::explain(&db, &collection, filter, sort, limit, hint)?;
        }
        Command::Databases => ops::databases(&cli.target)?,
        Command::Backup { to } => ops::backup(&cli.target, &to)?,
        Command::Restore { from } => ops::restore(&cli.target, &from)?,
        Command::Vacuum => ops::vacuum(&cli.target)?,
        Command::Check => return ops::check(&cli.target),
        Command::Stats { json } => ops::stats(&cli.target, json)?,
        Command::Sql {
            query,
            params,
            write,
        } => ops::sql(&cli.target, &query, &params, write)?,
        Command::Bench {
            workload,
            docs,
            ops,
            threads,
            json,
            sqlite_checkpoints,
        } => {
            if cli.target.db.is_some() || cli.target.database.is_some() {
                return Err(CliError::Input(
                    "bench takes --dir (where its files go), not --db or --database".to_string(),
                ));
            }
            let plan = bench::BenchPlan {
                workloads: bench::parse_workloads(&workload)?,
                docs,
                ops,
                threads: threads.map(|t| usize::try_from(t).unwrap_or(usize::MAX)),
                dir: cli.target.dir.clone(),
                json,
                sqlite_checkpoints,
            };
            bench::execute(&plan)?;
        }
        Command::Collections => {
            let db = cli.target.open()?.db;
            let mut out = stdout.lock();
            for name in db.list_collections()? {
                line(&mut out, &name)?;
            }
        }
    }
    Ok(0)
}

fn print_documents(cursor: impl Iterator<Item = pocketdb::Result<Value>>) -> CliResult {
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    for doc in cursor {
        line(&mut out, &doc?.to_string())?;
    }
    out.flush()?;
    Ok(())
}

/// Exit code for a single `run` reply: 0 when ok, 2 for bad-input codes, else 1; the
/// error is also reported on stderr.
fn reply_exit_code(reply: &Value) -> i32 {
    if reply["ok"] == 1 {
        return 0;
    }
    eprintln!(
        "error: {}",
        reply["errmsg"].as_str().unwrap_or("command failed")
    );
    if reply["code"].as_i64().is_some_and(is_input_code) {
        2
    } else {
        1
    }
}

/// `run` without an argument: one command per stdin line, one reply per stdout line. A
/// line that is not JSON gets a `FailedToParse` reply, so replies stay in step.
fn run_stdin(db: &pocketdb::Database) -> CliResult {
    let stdin = io::stdin();
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let mut raw = Vec::new();
    let mut input = stdin.lock();
    loop {
        raw.clear();
        if input.read_until(b'\n', &mut raw)? == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&raw);
        if text.trim().is_empty() {
            continue;
        }
        let reply = match relaxed::parse(&text) {
            Ok(command) => run_command(db, &command),
            Err(e) => pocketdb::command::CommandError::new(9, e).to_reply(),
        };
        line(&mut out, &reply.to_string())?;
        out.flush()?;
    }
}
