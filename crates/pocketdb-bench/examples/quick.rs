fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    for w in args[1].split(',') {
        let cfg = pocketdb_bench::Config {
            workload: w.parse().unwrap(),
            docs: n,
            ops: None,
            dir: None,
            threads: args.get(3).and_then(|s| s.parse().ok()),
        };
        println!("{}", pocketdb_bench::run(&cfg).unwrap());
    }
}
