//! The `group-by` workload: `$group` by city with a count and an average over the loaded
//! collection, beside the same query written by hand in SQL. Also times the pipeline
//! forced onto the Rust path (an extra `$first` accumulator SQL cannot answer), to show
//! what the `GROUP BY` push-down buys.

use pocketdb::Collection;
use rusqlite::Connection;
use serde_json::{json, Map, Value};
use std::time::Instant;

/// The measured pipeline.
pub fn pipeline() -> Value {
    json!([{"$group": {"_id": "$city", "n": {"$sum": 1}, "avg": {"$avg": "$score"}}}])
}

/// The same query by hand on the raw table.
pub const RAW_SQL: &str = "SELECT json_extract(doc, '$.city'), count(*), \
     avg(json_extract(doc, '$.score')) FROM docs GROUP BY 1";

fn raw_groups(conn: &Connection) -> rusqlite::Result<Vec<(String, i64, f64)>> {
    let mut stmt = conn.prepare_cached(RAW_SQL)?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    rows.collect()
}

/// Runs `ops` rounds through pocketdb, raw SQL and the Rust path; returns the seconds of
/// each and checks the three agree.
pub(crate) fn measure(
    coll: &Collection<Value>,
    conn: &Connection,
    ops: u64,
    extra: &mut Map<String, Value>,
) -> std::result::Result<(f64, f64), Box<dyn std::error::Error + Send + Sync>> {
    let mut ours = Vec::new();
    let t = Instant::now();
    for _ in 0..ops {
        ours = coll.aggregate(pipeline())?.to_vec()?;
    }
    let s = t.elapsed().as_secs_f64();
    let mut raw = Vec::new();
    let t = Instant::now();
    for _ in 0..ops {
        raw = raw_groups(conn)?;
    }
    let r = t.elapsed().as_secs_f64();
    let forced = json!([{"$group": {"_id": "$city", "n": {"$sum": 1}, "avg": {"$avg": "$score"},
                                    "first": {"$first": "$name"}}}]);
    let t = Instant::now();
    let rust: Vec<Value> = coll.aggregate(forced)?.to_vec()?;
    let rust_s = t.elapsed().as_secs_f64();
    check(&ours, &raw, &rust)?;
    extra.insert("groups".into(), json!(ours.len()));
    extra.insert("ms_per_group_by".into(), json!(s * 1000.0 / ops as f64));
    extra.insert("raw_ms_per_group_by".into(), json!(r * 1000.0 / ops as f64));
    extra.insert("rust_path_ms".into(), json!(rust_s * 1000.0));
    Ok((s, r))
}

fn check(ours: &[Value], raw: &[(String, i64, f64)], rust: &[Value]) -> Result<(), String> {
    if ours.len() != raw.len() || rust.len() != raw.len() {
        return Err(format!(
            "group-by: {} groups, raw {}, rust path {}",
            ours.len(),
            raw.len(),
            rust.len()
        ));
    }
    for (city, n, avg) in raw {
        for (what, docs) in [("sql", ours), ("rust", rust)] {
            let g = docs
                .iter()
                .find(|d| d["_id"] == json!(city))
                .ok_or_else(|| format!("group-by ({what}): no group {city}"))?;
            let got_avg = g["avg"].as_f64().unwrap_or(f64::NAN);
            if g["n"] != json!(n) || (got_avg - avg).abs() > 1e-9 * avg.abs().max(1.0) {
                return Err(format!(
                    "group-by ({what}): {g} differs from raw ({n}, {avg})"
                ));
            }
        }
    }
    Ok(())
}
