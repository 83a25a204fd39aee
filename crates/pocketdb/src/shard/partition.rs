//! Partitioned collections for event data (seed 002): documents routed by a time bucket
//! or a key prefix to one SQLite file per partition, created on demand. A query whose
//! filter constrains the partition field opens only the partitions that can hold a
//! match; [`PartitionedCollection::drop_partitions_before`] removes old data by deleting
//! whole files, without a `DELETE` or a `VACUUM`.
//!
//! Pruning is conservative: a partition is skipped only when no document it can hold
//! could match. Equality and `$in` pick partitions exactly; ranges on a time field are
//! widened by two days when the bound is a string (stored RFC 3339 strings compare as
//! text, and a time-zone offset moves text order by less than a day against instants),
//! and range bounds of other types (`{"$date": …}` objects) do not prune at all.

use super::ShardedCollection;
use crate::collection::Document;
use crate::error::{Error, Result};
use crate::index::ttl::days_from_civil;
use crate::query::{Cond, Filter, InItem};
use crate::value::FieldPath;
use serde_json::{json, Value};
use std::ops::Deref;

/// How a partitioned collection picks a document's partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionBy {
    /// By the time bucket of a date field: the value may be epoch milliseconds, an
    /// RFC 3339 string or `{"$date": …}` (see [`crate::parse_date_millis`]). Buckets are
    /// UTC. Every document must have a date there.
    Time {
        /// The date field (a dotted path).
        field: String,
        /// The bucket width.
        bucket: TimeBucket,
    },
    /// By the first `len` characters of a string field (seed 002's
    /// `events:2025:01:…` keys). Every document must have a string there.
    Prefix {
        /// The key field (a dotted path).
        field: String,
        /// Number of leading characters naming the partition (at least 1).
        len: usize,
    },
}

/// The width of a time partition. Partition names are the UTC bucket start:
/// `2025` (year), `2025-01` (month), `2025-01-31` (day), `2025-01-31T13` (hour).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeBucket {
    /// One partition per hour.
    Hour,
    /// One partition per day.
    Day,
    /// One partition per month.
    Month,
    /// One partition per year.
    Year,
}

impl TimeBucket {
    fn name(self) -> &'static str {
        match self {
            TimeBucket::Hour => "hour",
            TimeBucket::Day => "day",
            TimeBucket::Month => "month",
            TimeBucket::Year => "year",
        }
    }

    fn from_name(name: &str) -> Option<TimeBucket> {
        [
            TimeBucket::Hour,
            TimeBucket::Day,
            TimeBucket::Month,
            TimeBucket::Year,
        ]
        .into_iter()
        .find(|b| b.name() == name)
    }
}

/// Counters of a partitioned (or sharded) collection handle, for checking that queries
/// touch only the partitions they need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PartitionStats {
    /// Member files opened by this handle (a file already open in the process, through
    /// another handle of the same database, is not counted).
    pub opened: u64,
    /// Members visited by reads and writes since the handle was created, summed over
    /// operations (a query over 3 partitions adds 3).
    pub visited: u64,
    /// Member files of the database (all its sharded and partitioned collections) kept
    /// open for later use now: at most [`Options::max_open_members`](crate::Options::max_open_members).
    /// Members in use beyond those stay open until their users finish.
    pub open_members: usize,
}

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;
/// How far text order of RFC 3339 strings can stray from instant order (offsets are
/// under a day), plus margin.
const STRING_SLACK_MS: f64 = 2.0 * DAY_MS as f64;

/// The routing rule of a partitioned collection, with its parsed path.
#[derive(Debug, Clone)]
pub(crate) struct Partitioner {
    by: PartitionBy,
    path: FieldPath,
}

impl Partitioner {
    /// Validates the rule.
    pub(crate) fn new(by: PartitionBy) -> Result<Partitioner> {
        let field = match &by {
            PartitionBy::Time { field, .. } => field,
            PartitionBy::Prefix { field, len } => {
                if *len == 0 {
                    return Err(Error::InvalidArgument(
                        "a prefix partition needs len >= 1".to_string(),
                    ));
                }
                field
            }
        };
        let path = FieldPath::parse(field)?;
        Ok(Partitioner { by, path })
    }

    /// The rule.
    pub(crate) fn by(&self) -> &PartitionBy {
        &self.by
    }

    /// The partition field.
    pub(crate) fn path(&self) -> &FieldPath {
        &self.path
    }

    /// The rule as stored in the catalog.
    pub(crate) fn to_json(&self) -> Value {
        match &self.by {
            PartitionBy::Time { field, bucket } => {
                json!({"by": "time", "field": field, "bucket": bucket.name()})
            }
            PartitionBy::Prefix { field, len } => {
                json!({"by": "prefix", "field": field, "len": len})
            }
        }
    }

    /// The rule read back from the catalog.
    pub(crate) fn from_json(v: &Value) -> Option<Partitioner> {
        let field = v.get("field")?.as_str()?.to_string();
        let by = match v.get("by")?.as_str()? {
            "time" => PartitionBy::Time {
                field,
                bucket: TimeBucket::from_name(v.get("bucket")?.as_str()?)?,
            },
            "prefix" => PartitionBy::Prefix {
                field,
                len: usize::try_from(v.get("len")?.as_u64()?).ok()?,
            },
            _ => return None,
        };
        Partitioner::new(by).ok()
    }

    /// The partition of a document whose partition field holds `key`.
    pub(crate) fn label_of_key(&self, key: &Value) -> Result<String> {
        match &self.by {
            PartitionBy::Time { bucket, .. } => {
                let ms = time_millis(key).ok_or_else(|| {
                    Error::InvalidDocument(format!(
                        "partition field '{}' must hold a date (epoch milliseconds, RFC 3339 \
                         string or {{\"$date\": …}}), got {key}",
                        self.path
                    ))
                })?;
                time_label(ms, *bucket).ok_or_else(|| {
                    Error::InvalidDocument(format!(
                        "partition field '{}': date {key} is outside the years 0000-9999",
                        self.path
                    ))
                })
            }
            PartitionBy::Prefix { len, .. } => match key {
                Value::String(s) => Ok(s.chars().take(*len).collect()),
                other => Err(Error::InvalidDocument(format!(
                    "partition field '{}' must hold a string, got {other}",
                    self.path
                ))),
            },
        }
    }

    /// True when a partition name is well formed for this rule.
    pub(crate) fn is_label(&self, label: &str) -> bool {
        match &self.by {
            PartitionBy::Time { bucket, .. } => label_range(label, *bucket).is_some(),
            PartitionBy::Prefix { len, .. } => label.chars().count() <= *len,
        }
    }

    /// The instants `[start, end)` a time partition covers, in epoch milliseconds.
    pub(crate) fn range(&self, label: &str) -> Option<(i64, i64)> {
        match &self.by {
            PartitionBy::Time { bucket, .. } => label_range(label, *bucket),
            PartitionBy::Prefix { .. } => None,
        }
    }

    /// False only when no document of partition `label` can match `filter`.
    pub(crate) fn may_contain(&self, filter: &Filter, label: &str) -> bool {
        match filter {
            Filter::And(children) => children.iter().all(|c| self.may_contain(c, label)),
            Filter::Or(children) if !children.is_empty() => {
                children.iter().any(|c| self.may_contain(c, label))
            }
            Filter::Field { path, cond } if *path == self.path => self.cond_may_match(cond, label),
            _ => true,
        }
    }

    fn cond_may_match(&self, cond: &Cond, label: &str) -> bool {
        // Every stored document has a valid key, so an equality with a value that has no
        // partition (null, a non-date) matches nothing.
        let equal = |v: &Value| self.label_of_key(v).is_ok_and(|l| l == label);
        match cond {
            Cond::Eq(v) => equal(v),
            Cond::In(items) => items.iter().any(|item| match item {
                InItem::Value(v) => equal(v),
                InItem::Regex(_) => true,
            }),
            Cond::Gt(v) | Cond::Gte(v) => self.above_may_match(v, label),
            Cond::Lt(v) => self.below_may_match(v, label, true),
            Cond::Lte(v) => self.below_may_match(v, label, false),
            _ => true,
        }
    }

    /// Can the partition hold a value at or above `bound`?
    fn above_may_match(&self, bound: &Value, label: &str) -> bool {
        match &self.by {
            PartitionBy::Time { bucket, .. } => {
                let Some((_, end)) = label_range(label, *bucket) else {
                    return true;
                };
                match time_bound(bound) {
                    Some((ms, slack)) => end as f64 + slack > ms,
                    None => true,
                }
            }
            PartitionBy::Prefix { len, .. } => match bound {
                Value::String(s) => label >= truncate(s, *len).as_str(),
                _ => true,
            },
        }
    }

    /// Can the partition hold a value below (`strict`) or at or below `bound`?
    fn below_may_match(&self, bound: &Value, label: &str, strict: bool) -> bool {
        match &self.by {
            PartitionBy::Time { bucket, .. } => {
                let Some((start, _)) = label_range(label, *bucket) else {
                    return true;
                };
                match time_bound(bound) {
                    Some((ms, slack)) if strict => (start as f64) - slack < ms,
                    Some((ms, slack)) => (start as f64) - slack <= ms,
                    None => true,
                }
            }
            PartitionBy::Prefix { len, .. } => match bound {
                Value::String(s) => label <= truncate(s, *len).as_str(),
                _ => true,
            },
        }
    }
}

fn truncate(s: &str, len: usize) -> String {
    s.chars().take(len).collect()
}

/// A range bound on a time field as milliseconds, with the slack its type needs: exact
/// for numbers, [`STRING_SLACK_MS`] for strings. `None` (no pruning) otherwise.
fn time_bound(bound: &Value) -> Option<(f64, f64)> {
    match bound {
        Value::Number(n) => n.as_f64().map(|f| (f, 0.0)),
        Value::String(_) => {
            crate::index::parse_date_millis(bound).map(|ms| (ms as f64, STRING_SLACK_MS))
        }
        _ => None,
    }
}

/// Milliseconds since the epoch of a date value: a number (epoch milliseconds, floored),
/// an RFC 3339 string or `{"$date": …}`.
pub(crate) fn time_millis(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && f.abs() < 9.0e18)
                .map(|f| f.floor() as i64)
        }),
        other => crate::index::parse_date_millis(other),
    }
}

/// Year, month, day of a day count since 1970-01-01 (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The name of the bucket holding instant `ms`; `None` outside the years 0000-9999.
pub(crate) fn time_label(ms: i64, bucket: TimeBucket) -> Option<String> {
    let days = ms.div_euclid(DAY_MS);
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return None;
    }
    let hour = ms.rem_euclid(DAY_MS) / HOUR_MS;
    Some(match bucket {
        TimeBucket::Year => format!("{y:04}"),
        TimeBucket::Month => format!("{y:04}-{m:02}"),
        TimeBucket::Day => format!("{y:04}-{m:02}-{d:02}"),
        TimeBucket::Hour => format!("{y:04}-{m:02}-{d:02}T{hour:02}"),
    })
}

/// The instants `[start, end)` of a bucket name; `None` when malformed.
pub(crate) fn label_range(label: &str, bucket: TimeBucket) -> Option<(i64, i64)> {
    let num = |s: Option<&str>, digits: usize| -> Option<i64> {
        let s = s?;
        if s.len() != digits || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (date, hour) = match label.split_once('T') {
        Some((date, hour)) => (date, Some(hour)),
        None => (label, None),
    };
    let mut parts = date.split('-');
    let y = num(parts.next(), 4)?;
    let m = parts.next();
    let d = parts.next();
    if parts.next().is_some() {
        return None;
    }
    let valid_month = |m: i64| (1..=12).contains(&m);
    let start_of = |y: i64, m: i64, d: i64| days_from_civil(y, m, d) * DAY_MS;
    let next_month = |y: i64, m: i64| if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    match (bucket, m, d, hour) {
        (TimeBucket::Year, None, None, None) => Some((start_of(y, 1, 1), start_of(y + 1, 1, 1))),
        (TimeBucket::Month, Some(m), None, None) => {
            let m = num(Some(m), 2).filter(|m| valid_month(*m))?;
            let (ny, nm) = next_month(y, m);
            Some((start_of(y, m, 1), start_of(ny, nm, 1)))
        }
        (TimeBucket::Day | TimeBucket::Hour, Some(m), Some(d), _) => {
            let m = num(Some(m), 2).filter(|m| valid_month(*m))?;
            let d = num(Some(d), 2)?;
            let start = start_of(y, m, d);
            // Reject impossible dates (2025-02-30) by a round trip.
            if civil_from_days(start / DAY_MS) != (y, m, d) {
                return None;
            }
            match (bucket, hour) {
                (TimeBucket::Day, None) => Some((start, start + DAY_MS)),
                (TimeBucket::Hour, Some(h)) => {
                    let h = num(Some(h), 2).filter(|h| *h < 24)?;
                    Some((start + h * HOUR_MS, start + (h + 1) * HOUR_MS))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// A partition name as a file name: `[A-Za-z0-9-]` kept, every other byte as `_hh`.
pub(crate) fn encode_label(label: &str) -> String {
    let mut out = String::with_capacity(label.len());
    for b in label.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    out
}

/// The inverse of [`encode_label`]; `None` for names it cannot have produced.
pub(crate) fn decode_label(name: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(name.len());
    let mut iter = name.bytes();
    while let Some(b) = iter.next() {
        if b == b'_' {
            let hi = char::from(iter.next()?).to_digit(16)?;
            let lo = char::from(iter.next()?).to_digit(16)?;
            bytes.push(u8::try_from(hi * 16 + lo).ok()?);
        } else if b.is_ascii_alphanumeric() || b == b'-' {
            bytes.push(b);
        } else {
            return None;
        }
    }
    let label = String::from_utf8(bytes).ok()?;
    (encode_label(&label) == name).then_some(label)
}

/// A handle on a partitioned collection: the whole [`ShardedCollection`] API (through
/// `Deref`) with documents routed by [`PartitionBy`], plus partition management.
/// Created by [`Client::create_partitioned_collection`](crate::Client::create_partitioned_collection)
/// and reopened by [`Client::partitioned`](crate::Client::partitioned).
///
/// ```
/// use pocketdb::{Client, PartitionBy, TimeBucket};
/// use serde_json::json;
///
/// let dir = tempfile::tempdir()?;
/// let client = Client::open(dir.path())?;
/// let by = PartitionBy::Time { field: "ts".into(), bucket: TimeBucket::Day };
/// let events = client.create_partitioned_collection("app", "events", by)?;
/// const JAN_2: i64 = 1_735_776_000_000; // 2025-01-02T00:00:00Z in epoch milliseconds
/// events.insert_many([
///     json!({"ts": JAN_2 - 3_600_000, "type": "view"}),
///     json!({"ts": JAN_2 + 3_600_000, "type": "click"}),
/// ])?;
/// assert_eq!(events.partitions()?, vec!["2025-01-01", "2025-01-02"]);
/// let day2 = json!({"ts": {"$gte": JAN_2}});
/// assert_eq!(events.partitions_for(day2.clone())?, vec!["2025-01-02"]);
/// assert_eq!(events.count_documents(day2)?, 1);
/// assert_eq!(events.drop_partitions_before(JAN_2)?, vec!["2025-01-01"]); // one file deleted
/// assert_eq!(events.count_documents(json!({}))?, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct PartitionedCollection<T = Value> {
    inner: ShardedCollection<T>,
}

impl<T> Clone for PartitionedCollection<T> {
    fn clone(&self) -> Self {
        PartitionedCollection {
            inner: self.inner.clone(),
        }
    }
}

impl<T> std::fmt::Debug for PartitionedCollection<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionedCollection")
            .field("collection", &self.inner)
            .finish()
    }
}

impl<T> Deref for PartitionedCollection<T> {
    type Target = ShardedCollection<T>;

    fn deref(&self) -> &ShardedCollection<T> {
        &self.inner
    }
}

impl<T: Document> PartitionedCollection<T> {
    pub(crate) fn new(inner: ShardedCollection<T>) -> PartitionedCollection<T> {
        PartitionedCollection { inner }
    }

    /// The same collection seen through another document type.
    pub fn typed<U: Document>(&self) -> PartitionedCollection<U> {
        PartitionedCollection {
            inner: self.inner.typed(),
        }
    }

    /// The routing rule.
    pub fn partition_by(&self) -> Result<PartitionBy> {
        Ok(self.inner.spread().partitioner()?.by().clone())
    }

    /// Names of the existing partitions, sorted.
    pub fn partitions(&self) -> Result<Vec<String>> {
        self.inner.spread().partition_labels()
    }

    /// Names of the partitions a query with `filter` would read, without reading them.
    pub fn partitions_for(&self, filter: Value) -> Result<Vec<String>> {
        let filter = crate::query::parse_filter(&filter)?;
        self.inner.spread().labels_for(&filter)
    }

    /// Counters of files opened and partitions visited through this handle.
    pub fn stats(&self) -> PartitionStats {
        self.inner.spread().stats()
    }

    /// Deletes every time partition that ends at or before `millis` (epoch milliseconds;
    /// convert other date forms with [`crate::parse_date_millis`]): whole files are
    /// removed, so no `DELETE` runs and nothing needs a `VACUUM`. Returns the names of
    /// the partitions dropped. Fails for prefix partitions.
    pub fn drop_partitions_before(&self, millis: i64) -> Result<Vec<String>> {
        let spread = self.inner.spread();
        let partitioner = spread.partitioner()?;
        if !matches!(partitioner.by(), PartitionBy::Time { .. }) {
            return Err(spread.error("drop_partitions_before needs time partitions"));
        }
        let mut dropped = Vec::new();
        for label in spread.partition_labels()? {
            if partitioner
                .range(&label)
                .is_some_and(|(_, end)| end <= millis)
            {
                spread.remove_partition(&label)?;
                dropped.push(label);
            }
        }
        Ok(dropped)
    }

    /// Deletes one partition's file; false when it did not exist.
    pub fn drop_partition(&self, name: &str) -> Result<bool> {
        let spread = self.inner.spread();
        if !spread.partition_labels()?.iter().any(|l| l == name) {
            return Ok(false);
        }
        spread.remove_partition(name)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::parse_filter;

    const JAN_2_2025: i64 = 1_735_776_000_000;

    #[test]
    fn labels_and_ranges_round_trip() {
        for (bucket, label) in [
            (TimeBucket::Year, "2025"),
            (TimeBucket::Month, "2025-01"),
            (TimeBucket::Day, "2025-01-02"),
            (TimeBucket::Hour, "2025-01-02T00"),
        ] {
            assert_eq!(time_label(JAN_2_2025, bucket).as_deref(), Some(label));
            let (start, end) = label_range(label, bucket).unwrap();
            assert!(start <= JAN_2_2025 && JAN_2_2025 < end, "{label}");
            assert_eq!(time_label(start, bucket).as_deref(), Some(label));
            assert_eq!(time_label(end - 1, bucket).as_deref(), Some(label));
            assert_ne!(time_label(end, bucket).as_deref(), Some(label));
        }
        assert_eq!(
            label_range("2024-02-29", TimeBucket::Day).map(|r| r.1 - r.0),
            Some(DAY_MS)
        );
        assert_eq!(label_range("2025-02-29", TimeBucket::Day), None);
        assert_eq!(label_range("2025-13", TimeBucket::Month), None);
        assert_eq!(label_range("2025-01-02T24", TimeBucket::Hour), None);
        assert_eq!(label_range("2025-01-02", TimeBucket::Hour), None);
        assert_eq!(
            time_label(-1, TimeBucket::Day).as_deref(),
            Some("1969-12-31")
        );
        assert_eq!(time_label(i64::MAX / 2, TimeBucket::Day), None);
        // December rolls over to the next year.
        let (_, end) = label_range("2024-12", TimeBucket::Month).unwrap();
        assert_eq!(
            time_label(end, TimeBucket::Month).as_deref(),
            Some("2025-01")
        );
    }

    #[test]
    fn file_names_round_trip() {
        for label in ["2025-01-02T13", "events:2025", "a_b", "", "é/.."] {
            let name = encode_label(label);
            assert!(name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            assert_eq!(decode_label(&name).as_deref(), Some(label));
        }
        assert_eq!(decode_label("a_zz"), None);
        assert_eq!(decode_label("a.b"), None);
        assert_eq!(
            decode_label("_41"),
            None,
            "not the canonical encoding of 'A'"
        );
    }

    fn visits(p: &Partitioner, filter: Value, labels: &[&str]) -> Vec<String> {
        let f = parse_filter(&filter).unwrap();
        labels
            .iter()
            .filter(|l| p.may_contain(&f, l))
            .map(|l| l.to_string())
            .collect()
    }

    #[test]
    fn time_pruning() {
        let p = Partitioner::new(PartitionBy::Time {
            field: "ts".into(),
            bucket: TimeBucket::Day,
        })
        .unwrap();
        let days = ["2025-01-01", "2025-01-02", "2025-01-03", "2025-01-10"];
        assert_eq!(visits(&p, json!({}), &days).len(), 4);
        assert_eq!(
            visits(&p, json!({"ts": JAN_2_2025 + 5}), &days),
            vec!["2025-01-02"]
        );
        assert_eq!(
            visits(&p, json!({"ts": {"$gte": JAN_2_2025}}), &days),
            vec!["2025-01-02", "2025-01-03", "2025-01-10"]
        );
        assert_eq!(
            visits(
                &p,
                json!({"ts": {"$gte": JAN_2_2025, "$lt": JAN_2_2025 + DAY_MS}}),
                &days
            ),
            vec!["2025-01-02"]
        );
        assert_eq!(
            visits(&p, json!({"ts": {"$lt": JAN_2_2025}}), &days),
            vec!["2025-01-01"]
        );
        // Strings prune with two days of slack.
        assert_eq!(
            visits(&p, json!({"ts": {"$gte": "2025-01-09T00:00:00Z"}}), &days),
            vec!["2025-01-10"]
        );
        assert_eq!(
            visits(&p, json!({"ts": {"$gte": "2025-01-03T00:00:00Z"}}), &days),
            vec!["2025-01-01", "2025-01-02", "2025-01-03", "2025-01-10"]
        );
        assert_eq!(
            visits(
                &p,
                json!({"ts": {"$in": ["2025-01-03T05:00:00Z", JAN_2_2025]}}),
                &days
            ),
            vec!["2025-01-02", "2025-01-03"]
        );
        assert_eq!(
            visits(
                &p,
                json!({"$or": [{"ts": JAN_2_2025}, {"ts": "2025-01-10T01:00:00Z"}]}),
                &days
            ),
            vec!["2025-01-02", "2025-01-10"]
        );
        // Unprunable shapes visit everything.
        assert_eq!(
            visits(&p, json!({"$or": [{"ts": JAN_2_2025}, {"a": 1}]}), &days).len(),
            4
        );
        assert_eq!(
            visits(&p, json!({"ts": {"$ne": JAN_2_2025}}), &days).len(),
            4
        );
        assert_eq!(
            visits(&p, json!({"ts": {"$gt": {"$date": JAN_2_2025}}}), &days).len(),
            4
        );
        // An equality with a non-date matches nothing.
        assert!(visits(&p, json!({"ts": null}), &days).is_empty());
    }

    #[test]
    fn prefix_pruning() {
        let p = Partitioner::new(PartitionBy::Prefix {
            field: "key".into(),
            len: 3,
        })
        .unwrap();
        let labels = ["ab", "abc", "abd", "xyz"];
        assert_eq!(p.label_of_key(&json!("abcdef")).unwrap(), "abc");
        assert_eq!(p.label_of_key(&json!("ab")).unwrap(), "ab");
        assert!(p.label_of_key(&json!(5)).is_err());
        assert_eq!(visits(&p, json!({"key": "abd-1"}), &labels), vec!["abd"]);
        assert_eq!(
            visits(&p, json!({"key": {"$gte": "abc", "$lt": "abd"}}), &labels),
            vec!["abc", "abd"]
        );
        assert_eq!(
            visits(&p, json!({"key": {"$gt": "abz"}}), &labels),
            vec!["xyz"]
        );
        assert_eq!(
            visits(&p, json!({"key": {"$lte": "ab"}}), &labels),
            vec!["ab"]
        );
        assert!(Partitioner::new(PartitionBy::Prefix {
            field: "key".into(),
            len: 0
        })
        .is_err());
    }

    #[test]
    fn catalog_round_trip() {
        for by in [
            PartitionBy::Time {
                field: "a.ts".into(),
                bucket: TimeBucket::Hour,
            },
            PartitionBy::Prefix {
                field: "k".into(),
                len: 7,
            },
        ] {
            let p = Partitioner::new(by.clone()).unwrap();
            assert_eq!(Partitioner::from_json(&p.to_json()).unwrap().by(), &by);
        }
    }
}
