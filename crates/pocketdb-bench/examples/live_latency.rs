//! Commit-to-notification latency of live queries with 1, 100 and 1,000 queries open.
//!
//! `cargo run --release -p pocketdb-bench --example live_latency [docs] [writes]`

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args: Vec<String> = std::env::args().collect();
    let docs: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let writes: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1_000);
    for queries in [1, 100, 1000] {
        println!("{}", pocketdb_bench::live_latency(queries, docs, writes)?);
    }
    Ok(())
}
