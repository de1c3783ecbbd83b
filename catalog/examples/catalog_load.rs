//! Timing harness for `bench/catalog_load.py`: loads one catalog directory and formats every
//! diagnostic, printing one JSON line per repetition:
//! `{"load_s": .., "print_s": .., "offerings": .., "diagnostics": .., "bytes": ..}`.
//!
//!     cargo run --release -p platform-catalog --example catalog_load -- DIR [REPS]

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: catalog_load DIR [REPS]");
        std::process::exit(2);
    };
    let reps: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(1);
    let bytes: u64 = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| entry.metadata().ok())
                .map(|meta| meta.len())
                .sum()
        })
        .unwrap_or(0);
    for _ in 0..reps {
        let start = Instant::now();
        let (catalog, diags) = platform_catalog::load_dir(Path::new(&dir));
        let load_s = start.elapsed().as_secs_f64();
        let start = Instant::now();
        let mut out = String::new();
        for diag in &diags {
            let _ = writeln!(out, "{diag}");
        }
        let print_s = start.elapsed().as_secs_f64();
        println!(
            "{{\"load_s\": {load_s}, \"print_s\": {print_s}, \"offerings\": {}, \"diagnostics\": {}, \"bytes\": {bytes}, \"printed_bytes\": {}}}",
            catalog.offerings.len(),
            diags.len(),
            out.len()
        );
    }
}
