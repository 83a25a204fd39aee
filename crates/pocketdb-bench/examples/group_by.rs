//! Runs the `group-by` workload: `cargo run --release -p pocketdb-bench --example group_by -- [docs] [ops]`.

use pocketdb_bench::{run, Config, Workload};

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut args = std::env::args().skip(1);
    let docs = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let ops = args.next().map(|a| a.parse()).transpose()?;
    let report = run(&Config {
        workload: Workload::GroupBy,
        docs,
        ops,
        dir: None,
        threads: None,
    })?;
    println!("{report}");
    println!("{}", report.to_json());
    Ok(())
}
