//! Online backup and restore with SQLite's backup API.
//!
//! # Guarantees
//!
//! * A database backup is a consistent snapshot: the source is read inside one read
//!   transaction, so it holds exactly the commits made before the backup started, while
//!   writers keep committing (WAL lets them; they are never blocked).
//! * A client backup ([`Client::backup_to_dir`]) briefly takes the writer of every open
//!   database (in name order) while it opens the snapshots, so no write of this process
//!   is half-way through when the cut is made: the files form one consistent point in
//!   time for writes made through this `Client`. Writes to one file are atomic; writes
//!   spanning files (shards of one collection) never were, and the backup keeps exactly
//!   the ones that had committed. Other processes writing the files are not paused.
//! * A restore replaces the database's content in one write transaction through the
//!   backup API, so readers see either the old or the new content, and runs an
//!   integrity check on the backup first and on the result afterwards.
//! * In [`Durability::Buffered`](crate::Durability::Buffered) mode a backup first applies
//!   the writes acknowledged before it (so it holds all of them), and a restore applies
//!   them (they are then replaced) while holding buffered writers off. The file's
//!   position in its buffer log (`buffer_applied_seq`) stays the live one, not the
//!   backup's: the log belongs to the live file, and writes buffered after the restore
//!   must replay after a crash.
//! * A restore rewinds the database, and its change log says so: the restored log is
//!   cleared, numbering continues after the live file's last sequence number, and a
//!   `drop` of every collection the live file had plus an `insert` of every restored
//!   document are recorded. A watcher or change-set replica that had read the log to
//!   its end reaches the restored state; an older resume token is refused
//!   (`ResumeTokenExpired`). The file keeps its `database_id`.
//! * A client restore ([`Client::restore_from_dir`]) brings each restored database's
//!   sharded and partitioned collections back to the backup's member files: member
//!   files the backup does not hold (partitions created after it, the members of
//!   collections created after it) are closed and deleted before the backup's members
//!   are restored.

use crate::client::Client;
use crate::database::Database;
use crate::engine::schema::FORMAT_VERSION;
use crate::error::{Error, Result};
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Meta keys a restore keeps from the live file: the last buffered write applied to it
/// (its buffer log is the live one) and its identity as a change-set source.
const LIVE_META_KEYS: [&str; 2] = ["buffer_applied_seq", "database_id"];

/// A `_pocketdb_meta` value, as stored.
fn meta_value(conn: &Connection, key: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT value FROM _pocketdb_meta WHERE key = ?1",
            [key],
            |r| r.get(0),
        )
        .optional()?)
}

/// Pages copied per step of the backup API (progress is reported after each).
const PAGES_PER_STEP: i32 = 128;

/// Progress of a backup or restore, reported after each step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupProgress {
    /// Database being copied.
    pub database: String,
    /// Pages copied so far.
    pub copied: u64,
    /// Pages in total.
    pub total: u64,
}

/// What a backup wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// Database backed up.
    pub database: String,
    /// The file written.
    pub path: PathBuf,
    /// Size of the file in bytes.
    pub bytes: u64,
    /// Newest change-log sequence number included (a starting point for
    /// [`Database::export_changes`]).
    pub last_change_seq: i64,
}

fn open_read_only(path: &Path) -> Result<Connection> {
    Ok(Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
    )?)
}

/// Copies every page of `src` into `dst`, reporting progress; retries while busy.
fn copy(
    src: &Connection,
    dst: &mut Connection,
    database: &str,
    progress: &mut dyn FnMut(BackupProgress),
) -> Result<()> {
    let backup = Backup::new(src, dst)?;
    let mut waits = 0u32;
    loop {
        let step = backup.step(PAGES_PER_STEP)?;
        let p = backup.progress();
        let total = u64::try_from(p.pagecount).unwrap_or(0);
        let remaining = u64::try_from(p.remaining).unwrap_or(0);
        progress(BackupProgress {
            database: database.to_string(),
            copied: total.saturating_sub(remaining),
            total,
        });
        match step {
            StepResult::Done => return Ok(()),
            StepResult::More => waits = 0,
            StepResult::Busy | StepResult::Locked => {
                waits += 1;
                if waits > 500 {
                    return Err(Error::Sqlite(rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                        Some("backup: the database stayed locked".to_string()),
                    )));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            _ => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

fn last_seq(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row(
        "SELECT coalesce(max(seq), 0) FROM _pocketdb_changes",
        [],
        |r| r.get(0),
    )?)
}

/// A read-only connection holding an open read transaction on a database file.
pub(crate) struct Snapshot {
    conn: Connection,
}

impl Snapshot {
    fn open(path: &Path) -> Result<Snapshot> {
        let conn = open_read_only(path)?;
        conn.execute_batch("BEGIN DEFERRED")?;
        // The first read starts the transaction and pins the snapshot.
        conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
            r.get::<_, i64>(0)
        })?;
        Ok(Snapshot { conn })
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        let _ = self.conn.execute_batch("COMMIT");
    }
}

fn write_atomically(
    target: &Path,
    write: impl FnOnce(&mut Connection) -> Result<()>,
) -> Result<u64> {
    if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut tmp = target.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut dst = Connection::open(&tmp)?;
        write(&mut dst)?;
        // Leave a self-contained file: no WAL beside it.
        let _: String = dst.query_row("PRAGMA journal_mode=DELETE", [], |r| r.get(0))?;
        drop(dst);
        std::fs::rename(&tmp, target)?;
        Ok(std::fs::metadata(target)?.len())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

impl Database {
    /// Writes a consistent copy of the database to the file `path` while writers keep
    /// writing (see the [module docs](self) for the guarantees). The copy is written
    /// beside `path` and renamed into place, so `path` is never half-written.
    pub fn backup_to(&self, path: impl AsRef<Path>) -> Result<BackupReport> {
        self.backup_to_with(path, &mut |_| {})
    }

    /// [`backup_to`](Database::backup_to) reporting progress after each step.
    pub fn backup_to_with(
        &self,
        path: impl AsRef<Path>,
        progress: &mut dyn FnMut(BackupProgress),
    ) -> Result<BackupReport> {
        // Writes acknowledged in buffered mode are in the copy once applied.
        self.flush()?;
        match self.path() {
            Some(src) => {
                let snapshot = Snapshot::open(src)?;
                self.backup_snapshot(&snapshot, path.as_ref(), progress)
            }
            None => {
                let writer = self.inner.pool.writer();
                let seq = last_seq(&writer)?;
                let bytes = write_atomically(path.as_ref(), |dst| {
                    copy(&writer, dst, self.name(), progress)
                })?;
                Ok(BackupReport {
                    database: self.name().to_string(),
                    path: path.as_ref().to_path_buf(),
                    bytes,
                    last_change_seq: seq,
                })
            }
        }
    }

    fn backup_snapshot(
        &self,
        snapshot: &Snapshot,
        path: &Path,
        progress: &mut dyn FnMut(BackupProgress),
    ) -> Result<BackupReport> {
        let seq = last_seq(&snapshot.conn)?;
        let bytes = write_atomically(path, |dst| copy(&snapshot.conn, dst, self.name(), progress))?;
        Ok(BackupReport {
            database: self.name().to_string(),
            path: path.to_path_buf(),
            bytes,
            last_change_seq: seq,
        })
    }

    /// Replaces the database's content with the backup at `path`, online: the backup is
    /// checked first (a damaged or foreign file is refused and nothing changes), copied
    /// in one write transaction, and the result checked again.
    pub fn restore_from(&self, path: impl AsRef<Path>) -> Result<()> {
        self.restore_from_with(path, &mut |_| {})
    }

    /// [`restore_from`](Database::restore_from) reporting progress.
    pub fn restore_from_with(
        &self,
        path: impl AsRef<Path>,
        progress: &mut dyn FnMut(BackupProgress),
    ) -> Result<()> {
        let path = path.as_ref();
        if !path.is_file() {
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no backup at {}", path.display()),
            )));
        }
        let report = super::check_file(path)?;
        if !report.ok {
            return Err(Error::Incompatible(format!(
                "backup {} is damaged: {}",
                path.display(),
                report.problems.join("; ")
            )));
        }
        let src = open_read_only(path)?;
        let version: Option<String> = src
            .query_row(
                "SELECT value FROM _pocketdb_meta WHERE key = 'format_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| Error::Incompatible(format!("not a pocketdb database: {e}")))?;
        if version != Some(FORMAT_VERSION.to_string()) {
            return Err(Error::Incompatible(format!(
                "backup {} has format version {:?}, this build reads {FORMAT_VERSION}",
                path.display(),
                version
            )));
        }
        {
            // Buffered writes acknowledged before the restore are applied (and then
            // replaced), later ones wait for it.
            let _exclusive = self.buffer().map(|b| b.exclusive()).transpose()?;
            let mut writer = self.inner.pool.writer();
            // What belongs to the live file rather than to its content: its position in
            // its buffer log, its identity for change-set replicas, and its change-log
            // numbering (readers of the log must not see a number twice).
            let kept: Vec<(&str, Option<String>)> = LIVE_META_KEYS
                .iter()
                .map(|key| Ok((*key, meta_value(&writer, key)?)))
                .collect::<Result<_>>()?;
            let live_position = crate::changes::log_position(&writer)?;
            let live_collections: Vec<String> = {
                let mut stmt = writer.prepare("SELECT name FROM _pocketdb_collections")?;
                let names = stmt.query_map([], |r| r.get(0))?;
                names.collect::<rusqlite::Result<_>>()?
            };
            copy(&src, &mut writer, self.name(), progress)?;
            for (key, value) in &kept {
                match value {
                    Some(value) => writer.execute(
                        "INSERT INTO _pocketdb_meta(key, value) VALUES (?1, ?2)
                         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                        [key, value.as_str()],
                    )?,
                    None => writer.execute("DELETE FROM _pocketdb_meta WHERE key = ?1", [key])?,
                };
            }
            crate::changes::restart_after_restore(&writer, live_position, &live_collections)?;
            let problems = super::check::integrity_problems(&writer, true)?;
            if !problems.is_empty() {
                return Err(Error::Incompatible(format!(
                    "restored database failed its integrity check: {}",
                    problems.join("; ")
                )));
            }
        }
        self.invalidate_caches();
        // Watchers of this handle read the restart of the log.
        self.inner.hub.committed(self);
        Ok(())
    }
}

impl Client {
    /// Backs up every database of the client into `dir` (`<dir>/<name>.sqlite`) as one
    /// consistent cut (see the [module docs](self)).
    pub fn backup_to_dir(&self, dir: impl AsRef<Path>) -> Result<Vec<BackupReport>> {
        self.backup_to_dir_with(dir, &mut |_| {})
    }

    /// [`backup_to_dir`](Client::backup_to_dir) reporting progress per database.
    pub fn backup_to_dir_with(
        &self,
        dir: impl AsRef<Path>,
        progress: &mut dyn FnMut(BackupProgress),
    ) -> Result<Vec<BackupReport>> {
        let dir = dir.as_ref();
        if std::fs::canonicalize(dir).ok() == std::fs::canonicalize(self.dir()).ok() {
            return Err(Error::InvalidArgument(
                "cannot back up a client into its own directory".to_string(),
            ));
        }
        std::fs::create_dir_all(dir)?;
        let names = self.list_databases()?;
        // Every file: each database, then the members of its sharded and partitioned
        // collections, with the path each takes in the backup directory.
        let mut files: Vec<(PathBuf, Database)> = Vec::new();
        for name in &names {
            let db = self.database(name)?;
            let members = crate::shard::member_databases(&db)?;
            files.push((PathBuf::from(format!("{name}.sqlite")), db));
            files.extend(members);
        }
        // The cut: with every writer held, no write is in flight; open the snapshots.
        // Buffered databases apply what they acknowledged first and hold their
        // buffered writers off until then.
        let snapshots = {
            let _gates = files
                .iter()
                .filter_map(|(_, d)| d.buffer())
                .map(|b| b.exclusive())
                .collect::<Result<Vec<_>>>()?;
            let _writers: Vec<_> = files.iter().map(|(_, d)| d.inner.pool.writer()).collect();
            files
                .iter()
                .map(|(_, d)| match d.path() {
                    Some(p) => Snapshot::open(p),
                    None => Err(Error::InvalidArgument("in-memory database".to_string())),
                })
                .collect::<Result<Vec<_>>>()?
        };
        let mut reports = Vec::new();
        for ((relative, db), snapshot) in files.iter().zip(&snapshots) {
            let target = dir.join(relative);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            reports.push(db.backup_snapshot(snapshot, &target, progress)?);
        }
        Ok(reports)
    }

    /// Restores every `<name>.sqlite` backup found in `dir` into the database of the
    /// same name (created if needed), with the member files of its sharded and
    /// partitioned collections: afterwards a restored database has exactly the backup's
    /// member files (partitions and collections created after the backup are deleted).
    /// Returns the names restored. Each backup is checked before anything is replaced.
    pub fn restore_from_dir(&self, dir: impl AsRef<Path>) -> Result<Vec<String>> {
        self.restore_from_dir_with(dir, &mut |_| {})
    }

    /// [`restore_from_dir`](Client::restore_from_dir) reporting progress.
    pub fn restore_from_dir_with(
        &self,
        dir: impl AsRef<Path>,
        progress: &mut dyn FnMut(BackupProgress),
    ) -> Result<Vec<String>> {
        let backup = Client::open(dir.as_ref())?;
        let names = backup.list_databases()?;
        for name in &names {
            let report = super::check_file(&backup.database_path(name)?)?;
            if !report.ok {
                return Err(Error::Incompatible(format!(
                    "backup of '{name}' is damaged: {}",
                    report.problems.join("; ")
                )));
            }
        }
        for name in &names {
            let db = self.database(name)?;
            db.restore_from_with(backup.database_path(name)?, progress)?;
            // Members the backup lacks (partitions or whole collections created after
            // it) go first, so the restored members are exactly the backup's.
            remove_members_not_in_backup(
                &db,
                &self.database_path(name)?,
                &backup.database_path(name)?,
            )?;
            // Members of sharded and partitioned collections come back beside it.
            let backup_db = backup.database(name)?;
            for (relative, _) in crate::shard::member_databases(&backup_db)? {
                let member = self.inner_member(&db, &relative)?;
                member.restore_from_with(backup.dir().join(&relative), progress)?;
            }
        }
        Ok(names)
    }

    /// Opens (creating) the member file at `relative` beside `db`, through its registry.
    fn inner_member(&self, db: &Database, relative: &Path) -> Result<Database> {
        let path = self.dir().join(relative);
        db.inner.shards.open_member(&path, db.options())
    }
}

/// The directory kinds of member files (`<db>.shards/`, `<db>.parts/`), as
/// [`crate::shard::member_kind`] names them.
const MEMBER_KINDS: [&str; 2] = ["shards", "parts"];

/// The member directories beside the database file `db_file`, by kind and collection
/// (`<dir>/<db>.<kind>/<collection>/`), each with the names of the member files in it
/// (`*.sqlite`; empty for a directory without any).
fn member_files(db_file: &Path) -> Result<BTreeMap<(&'static str, String), BTreeSet<String>>> {
    let mut out = BTreeMap::new();
    let Some(stem) = db_file.file_stem().and_then(|s| s.to_str()) else {
        return Ok(out);
    };
    let base = db_file.parent().unwrap_or_else(|| Path::new("."));
    for kind in MEMBER_KINDS {
        for (collection, dir) in sub_dirs(&base.join(format!("{stem}.{kind}")))? {
            let mut files = BTreeSet::new();
            for entry in read_dir_if_present(&dir)? {
                let entry = entry?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if name.ends_with(".sqlite") && entry.file_type()?.is_file() {
                    files.insert(name.to_string());
                }
            }
            out.insert((kind, collection), files);
        }
    }
    Ok(out)
}

/// The sub-directories of `dir` with UTF-8 names (none when `dir` does not exist).
fn sub_dirs(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in read_dir_if_present(dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        if let Some(name) = entry.file_name().to_str() {
            out.push((name.to_string(), entry.path()));
        }
    }
    Ok(out)
}

/// The entries of `dir`; none when it does not exist.
fn read_dir_if_present(dir: &Path) -> Result<Vec<std::io::Result<std::fs::DirEntry>>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => Ok(entries.collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// Deletes (through `db`'s member registry, so no open instance survives) every member
/// file beside `live_file` that the backup beside `backup_file` does not hold: a member
/// directory the backup lacks goes whole (a collection created after the backup, or
/// recreated with another layout), a partition file the backup lacks goes alone. Any
/// other file the backup lacks (a hash shard of a collection recreated with more
/// shards, a file that is no partition) takes its whole directory with it; the
/// backup's files of that directory are restored into new files afterwards.
fn remove_members_not_in_backup(db: &Database, live_file: &Path, backup_file: &Path) -> Result<()> {
    let backed_up = member_files(backup_file)?;
    for ((kind, collection), files) in member_files(live_file)? {
        let Some(kept) = backed_up.get(&(kind, collection.clone())) else {
            crate::shard::remove_members(db, &collection, kind)?;
            continue;
        };
        let extra: Vec<&String> = files.iter().filter(|f| !kept.contains(*f)).collect();
        if extra.is_empty() {
            continue;
        }
        let partitions = if kind == "parts" {
            partition_labels(&extra).zip(db.partitioned::<Value>(&collection).ok())
        } else {
            None
        };
        match partitions {
            Some((labels, partitioned)) => {
                for label in labels {
                    partitioned.spread().remove_partition(&label)?;
                }
            }
            None => crate::shard::remove_members(db, &collection, kind)?,
        }
    }
    Ok(())
}

/// The partition names of partition files (`part-<name>.sqlite`); `None` when one of
/// them is not a partition file.
fn partition_labels(files: &[&String]) -> Option<Vec<String>> {
    files
        .iter()
        .map(|f| {
            f.strip_prefix("part-")
                .and_then(|f| f.strip_suffix(".sqlite"))
                .and_then(crate::shard::partition::decode_label)
        })
        .collect()
}
