//! `pocketdb bench`: runs the workloads of `pocketdb-bench`, each through pocketdb and
//! through raw rusqlite doing the same work, and prints one line (or one JSON object)
//! per workload.

use crate::error::{CliError, CliResult};
use crate::output::line;
use pocketdb_bench::{run, Config, Report, Workload};
use std::io::{self, Write};
use std::path::PathBuf;
use std::str::FromStr;

/// What `pocketdb bench` was asked to do, parsed before anything runs.
#[derive(Debug, Clone)]
pub struct BenchPlan {
    /// The workloads, in the order given (`all`: [`Workload::ALL`]).
    pub workloads: Vec<Workload>,
    /// Documents per workload.
    pub docs: u64,
    /// Operations measured (each workload's default when `None`).
    pub ops: Option<u64>,
    /// Writer threads for concurrent workloads.
    pub threads: Option<usize>,
    /// Directory for the database files (a temporary one when `None`).
    pub dir: Option<PathBuf>,
    /// One JSON object per workload instead of a table line.
    pub json: bool,
    /// SQLite's own checkpoints in the writer instead of the background thread.
    pub sqlite_checkpoints: bool,
}

/// Parses `--workload`: `all`, one name, or names separated by commas. Unknown names are
/// bad input, reported with the list of known ones.
pub fn parse_workloads(text: &str) -> CliResult<Vec<Workload>> {
    if text.trim() == "all" {
        return Ok(Workload::ALL.to_vec());
    }
    let mut out = Vec::new();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let w = Workload::from_str(name).map_err(CliError::Input)?;
        if !out.contains(&w) {
            out.push(w);
        }
    }
    if out.is_empty() {
        return Err(CliError::Input(
            "--workload needs a workload name, a comma-separated list, or 'all'".to_string(),
        ));
    }
    Ok(out)
}

/// Runs every workload of `plan`, printing each result as soon as it is known.
pub fn execute(plan: &BenchPlan) -> CliResult {
    let stdout = io::stdout();
    for &workload in &plan.workloads {
        let config = Config {
            workload,
            docs: plan.docs,
            ops: plan.ops,
            dir: plan.dir.clone(),
            threads: plan.threads,
            sqlite_checkpoints: plan.sqlite_checkpoints,
        };
        let report =
            run(&config).map_err(|e| CliError::Failure(format!("bench {workload}: {e}")))?;
        let text = if plan.json {
            report.to_json().to_string()
        } else {
            human(&report)
        };
        let mut out = stdout.lock();
        line(&mut out, &text)?;
        out.flush()?;
    }
    Ok(())
}

/// One aligned line: throughputs, their ratio, then the workload's extra figures.
fn human(r: &Report) -> String {
    let mut text = format!(
        "{:<16} docs={:<8} ops={:<8} pocketdb {:>11.0} ops/s   raw rusqlite {:>11.0} ops/s   ratio {:.2}",
        r.workload.name(),
        r.docs,
        r.ops,
        r.ops_per_sec,
        r.raw_ops_per_sec,
        r.ratio()
    );
    for (k, v) in &r.extra {
        text.push_str(&format!("  {k}={v}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_lists() {
        assert_eq!(parse_workloads("all").unwrap().len(), Workload::ALL.len());
        assert_eq!(
            parse_workloads("insert-one, get-by-id,insert-one").unwrap(),
            vec![Workload::InsertOne, Workload::GetById]
        );
        assert!(matches!(
            parse_workloads("nope"),
            Err(CliError::Input(m)) if m.contains("insert-many")
        ));
        assert!(matches!(parse_workloads(","), Err(CliError::Input(_))));
    }
}
