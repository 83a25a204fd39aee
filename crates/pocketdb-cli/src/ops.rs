//! Operations subcommands: `databases`, `backup`, `restore`, `vacuum`, `check`, `stats`
//! and `sql`. Each takes `--db FILE`, or `--dir DIR` with `--database NAME` for one
//! database of the directory (without `--database`: every database of it, for the
//! subcommands where that makes sense).

use crate::error::{CliError, CliResult};
use crate::output::line;
use crate::target::{DbArgs, DEFAULT_DATABASE, DEFAULT_DIR};
use indicatif::{ProgressBar, ProgressStyle};
use pocketdb::maintenance::check_file;
use pocketdb::{BackupProgress, Client, Database, DatabaseStats};
use serde_json::Value;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};

/// What a subcommand works on.
enum Scope {
    /// One database file (`--db`).
    File(PathBuf),
    /// One database of a client directory.
    One(Client, String),
    /// Every database of a client directory.
    All(Client),
}

fn scope(args: &DbArgs, all_by_default: bool) -> CliResult<Scope> {
    args.validate()?;
    if let Some(path) = &args.db {
        return Ok(Scope::File(path.clone()));
    }
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR));
    let client = Client::open(dir)?;
    match &args.database {
        Some(name) => Ok(Scope::One(client, name.clone())),
        None if all_by_default => Ok(Scope::All(client)),
        None => Ok(Scope::One(client, DEFAULT_DATABASE.to_string())),
    }
}

fn databases_of(scope: &Scope) -> CliResult<Vec<Database>> {
    Ok(match scope {
        Scope::File(p) => vec![Database::open(p)?],
        Scope::One(c, n) => vec![c.database(n)?],
        Scope::All(c) => c
            .list_databases()?
            .iter()
            .map(|n| c.database(n))
            .collect::<pocketdb::Result<_>>()?,
    })
}

/// A progress bar on stderr when it is a terminal, fed by backup/restore progress.
struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    fn new(verb: &str) -> Progress {
        let bar = io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            if let Ok(style) =
                ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} pages ({eta})")
            {
                bar.set_style(style);
            }
            bar.set_message(verb.to_string());
            bar
        });
        Progress { bar }
    }

    fn update(&self, p: &BackupProgress) {
        if let Some(bar) = &self.bar {
            bar.set_length(p.total);
            bar.set_position(p.copied);
        }
    }

    fn done(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// `pocketdb databases`: the databases of the directory (or the file's name).
pub fn databases(args: &DbArgs) -> CliResult {
    let mut out = io::stdout().lock();
    match scope(args, true)? {
        Scope::File(p) => {
            let name = p.file_stem().map(|s| s.to_string_lossy().into_owned());
            line(&mut out, &name.unwrap_or_default())?;
        }
        Scope::One(c, _) | Scope::All(c) => {
            for name in c.list_databases()? {
                line(&mut out, &name)?;
            }
        }
    }
    Ok(())
}

/// `pocketdb backup --to PATH`: a file for one database, a directory for all.
pub fn backup(args: &DbArgs, to: &Path) -> CliResult {
    let progress = Progress::new("backup");
    let mut report = |p: BackupProgress| progress.update(&p);
    let reports = match scope(args, true)? {
        Scope::File(p) => {
            require_file(&p)?;
            vec![Database::open(&p)?.backup_to_with(to, &mut report)?]
        }
        Scope::One(c, n) => {
            require_database(&c, &n)?;
            vec![c.database(&n)?.backup_to_with(to, &mut report)?]
        }
        Scope::All(c) => c.backup_to_dir_with(to, &mut report)?,
    };
    progress.done();
    let mut out = io::stdout().lock();
    for r in reports {
        line(
            &mut out,
            &format!(
                "backed up {} to {} ({} bytes, change log at {})",
                r.database,
                r.path.display(),
                r.bytes,
                r.last_change_seq
            ),
        )?;
    }
    Ok(())
}

fn require_file(path: &Path) -> CliResult {
    if path.is_file() {
        Ok(())
    } else {
        Err(CliError::Failure(format!(
            "no database file at {}",
            path.display()
        )))
    }
}

fn require_database(client: &Client, name: &str) -> CliResult {
    if client.database_path(name)?.is_file() {
        Ok(())
    } else {
        Err(CliError::Failure(format!(
            "database '{name}' does not exist"
        )))
    }
}

/// `pocketdb restore --from PATH`: a backup file into one database, or a backup
/// directory into the client directory.
pub fn restore(args: &DbArgs, from: &Path) -> CliResult {
    let progress = Progress::new("restore");
    let mut report = |p: BackupProgress| progress.update(&p);
    let restored = match scope(args, from.is_dir())? {
        Scope::File(p) => {
            Database::open(&p)?.restore_from_with(from, &mut report)?;
            vec![p.display().to_string()]
        }
        Scope::One(c, n) => {
            c.database(&n)?.restore_from_with(from, &mut report)?;
            vec![n]
        }
        Scope::All(c) => c.restore_from_dir_with(from, &mut report)?,
    };
    progress.done();
    let mut out = io::stdout().lock();
    for name in restored {
        line(
            &mut out,
            &format!("restored {name} from {}", from.display()),
        )?;
    }
    Ok(())
}

/// `pocketdb vacuum`.
pub fn vacuum(args: &DbArgs) -> CliResult {
    let scope = scope(args, true)?;
    if let Scope::File(p) = &scope {
        require_file(p)?;
    }
    let mut out = io::stdout().lock();
    for db in databases_of(&scope)? {
        let before = file_size(&db);
        db.vacuum()?;
        db.checkpoint(pocketdb::CheckpointMode::Truncate)?;
        line(
            &mut out,
            &format!(
                "vacuumed {}: {} -> {} bytes",
                db.name(),
                before,
                file_size(&db)
            ),
        )?;
    }
    Ok(())
}

fn file_size(db: &Database) -> u64 {
    db.path()
        .and_then(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .unwrap_or(0)
}

/// `pocketdb check`: exit 0 when every file is healthy, 1 with a report otherwise. The
/// files are checked without being opened as databases, so damage is reported rather
/// than failing the open.
pub fn check(args: &DbArgs) -> CliResult<i32> {
    let files: Vec<(String, PathBuf)> = match scope(args, true)? {
        Scope::File(p) => vec![(p.display().to_string(), p)],
        Scope::One(c, n) => vec![(n.clone(), c.database_path(&n)?)],
        Scope::All(c) => c
            .list_databases()?
            .into_iter()
            .map(|n| {
                let p = c.database_path(&n)?;
                Ok((n, p))
            })
            .collect::<pocketdb::Result<_>>()?,
    };
    let mut out = io::stdout().lock();
    let mut healthy = true;
    for (name, path) in files {
        match check_file(&path) {
            Ok(report) if report.ok => line(&mut out, &format!("{name}: ok"))?,
            Ok(report) => {
                healthy = false;
                write!(out, "{name}: {report}")?;
            }
            Err(e) => {
                healthy = false;
                line(&mut out, &format!("{name}: {e}"))?;
            }
        }
    }
    Ok(if healthy { 0 } else { 1 })
}

/// `pocketdb stats [--json]`.
pub fn stats(args: &DbArgs, json: bool) -> CliResult {
    let scope = scope(args, true)?;
    if let Scope::File(p) = &scope {
        require_file(p)?;
    }
    let all = databases_of(&scope)?
        .iter()
        .map(Database::stats)
        .collect::<pocketdb::Result<Vec<_>>>()?;
    let mut out = io::stdout().lock();
    if json {
        for s in &all {
            let text =
                serde_json::to_string(s).map_err(|e| CliError::Failure(format!("stats: {e}")))?;
            line(&mut out, &text)?;
        }
        return Ok(());
    }
    for s in &all {
        write_stats_table(&mut out, s)?;
    }
    Ok(())
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn write_stats_table(out: &mut impl Write, s: &DatabaseStats) -> io::Result<()> {
    line(out, &format!("database {}", s.database))?;
    line(
        out,
        &format!(
            "  file {}  wal {}  pages {} x {} B  free pages {}  change log {} entries",
            human(s.file_bytes),
            human(s.wal_bytes),
            s.page_count,
            s.page_size,
            s.freelist_pages,
            s.change_log_entries
        ),
    )?;
    if let Some(c) = &s.cache {
        line(
            out,
            &format!(
                "  page cache: {} hits, {} misses, hit ratio {:.1}%",
                c.hits,
                c.misses,
                c.hit_ratio * 100.0
            ),
        )?;
    }
    let width = s
        .collections
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(0)
        .max("collection".len());
    line(
        out,
        &format!(
            "  {:<width$}  {:>10}  {:>10}  {:>10}  {:>10}  expire",
            "collection", "documents", "data", "table", "indexes"
        ),
    )?;
    for c in &s.collections {
        let index_bytes: u64 = c.indexes.iter().map(|i| i.bytes).sum();
        let expire = c
            .expire_after_ms
            .map(|ms| format!("{:.3}s", ms as f64 / 1000.0))
            .unwrap_or_else(|| "-".to_string());
        line(
            out,
            &format!(
                "  {:<width$}  {:>10}  {:>10}  {:>10}  {:>10}  {expire}",
                c.name,
                c.documents,
                human(c.data_bytes),
                human(c.table_bytes),
                human(index_bytes)
            ),
        )?;
    }
    for q in &s.slow_queries {
        line(
            out,
            &format!(
                "  slow: {} {:.1} ms {}",
                q.collection, q.duration_ms, q.filter
            ),
        )?;
    }
    Ok(())
}

/// `pocketdb sql QUERY [--param JSON]... [--write]`: rows as JSON lines.
pub fn sql(args: &DbArgs, query: &str, params: &[String], write: bool) -> CliResult {
    let params = params
        .iter()
        .map(|p| crate::relaxed::parse(p).map_err(|e| CliError::Input(format!("--param: {e}"))))
        .collect::<CliResult<Vec<Value>>>()?;
    let scope = scope(args, false)?;
    if let Scope::File(p) = &scope {
        require_file(p)?;
    }
    let db = databases_of(&scope)?
        .into_iter()
        .next()
        .ok_or_else(|| CliError::Failure("no database".to_string()))?;
    let rows = if write {
        db.sql_write(query, &params)?
    } else {
        db.sql(query, &params)?
    };
    let mut out = io::BufWriter::new(io::stdout().lock());
    for row in rows {
        line(&mut out, &row.to_string())?;
    }
    out.flush()?;
    Ok(())
}
