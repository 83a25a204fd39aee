//! Benchmark workloads for pocketdb. Every workload runs twice in the same process: once
//! through pocketdb and once through raw rusqlite doing the same work (same documents,
//! same pragmas, prepared statements, one transaction per batch), and reports the ratio
//! of the two throughputs — raw rusqlite is the physical limit we measure ourselves against.

pub mod group_by;
mod live;
mod raw;
mod sharded;
mod workloads;

pub use live::{live_latency, LiveLatency};
pub use workloads::{run, Config, Report, Workload};

use serde_json::{json, Value};

/// The 50 city names cycled through by [`document`].
pub const CITIES: [&str; 50] = [
    "Amsterdam",
    "Athens",
    "Bangkok",
    "Barcelona",
    "Beijing",
    "Berlin",
    "Bogota",
    "Boston",
    "Brussels",
    "Budapest",
    "Cairo",
    "Chicago",
    "Copenhagen",
    "Dakar",
    "Delhi",
    "Dubai",
    "Dublin",
    "Helsinki",
    "Hanoi",
    "Istanbul",
    "Jakarta",
    "Johannesburg",
    "Kyiv",
    "Lagos",
    "Lima",
    "Lisbon",
    "London",
    "Madrid",
    "Manila",
    "Melbourne",
    "Mexico City",
    "Milan",
    "Montreal",
    "Moscow",
    "Mumbai",
    "Nairobi",
    "Oslo",
    "Paris",
    "Prague",
    "Rome",
    "Santiago",
    "Seoul",
    "Singapore",
    "Stockholm",
    "Sydney",
    "Taipei",
    "Tokyo",
    "Toronto",
    "Vienna",
    "Warsaw",
];

/// Document `i` of every workload (the shape fixed by the benchmark specification).
pub fn document(i: u64) -> Value {
    json!({
        "_id": format!("{:024x}", i),
        "name": format!("user{i}"),
        "email": format!("user{i}@example.com"),
        "age": i % 90,
        "city": CITIES[(i % 50) as usize],
        "score": ((i * 7919) % 10000) as f64 / 100.0,
        "active": i.is_multiple_of(3),
        "tags": [format!("t{}", i % 10), format!("t{}", i % 7)],
        "address": {"zip": format!("{:05}", i % 100000), "street": format!("{} Main St", i % 1000)},
    })
}

/// Kinds of the events of the `event-storage` workload.
const EVENT_KINDS: [&str; 3] = ["temp", "humidity", "co2"];

/// Event `i` of the `event-storage` workload: a small sensor reading (seed 002's
/// micro-documents), without an `_id` (pocketdb gives it an ObjectId; the raw side a
/// 24-hex-digit one too, [`doc_id`]).
pub fn event(i: u64) -> Value {
    json!({
        "device": format!("sensor-{:04}", i % 1000),
        "ts": 1_764_806_400_000u64 + i * 100,
        "kind": EVENT_KINDS[(i % 3) as usize],
        "value": (i % 1000) as f64 / 10.0,
    })
}

/// The `_id` of document `i`.
pub fn doc_id(i: u64) -> String {
    format!("{:024x}", i)
}
