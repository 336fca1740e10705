//! Run seeds from the command line: `cargo run -p reprise-sim --release --example sweep -- [first] [n] [jobs]`,
//! or replay one with its trace: `… --example sweep -- seed <S> [shrink]`. Environment:
//! `SIM_OPS` (most operations per seed), `SIM_FAULTS` (none, light, swarm, heavy), `SIM_CODEC=0` (skip the CBOR
//! round trip of every message), `SIM_ONE_WAY=0` (draw no one-way stalls).
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let mut cli = reprise_sim::cli::Args::default();
    if args.first().map(String::as_str) == Some("seed") {
        cli.seed = Some(num(1, 0));
        cli.shrink = args.get(2).map(String::as_str) == Some("shrink");
    } else {
        cli.first = num(0, 0);
        cli.seeds = Some(num(1, 100));
        cli.opts.jobs = num(2, 1) as usize;
    }
    let env = |name: &str| std::env::var(name).ok();
    if let Some(ops) = env("SIM_OPS").and_then(|v| v.parse().ok()) {
        cli.opts.ops_max = ops;
    }
    if let Some(faults) = env("SIM_FAULTS").and_then(|v| v.parse().ok()) {
        cli.opts.faults = faults;
    }
    cli.opts.one_way_stalls = env("SIM_ONE_WAY").is_none_or(|v| v != "0");
    if let Some(codec) = env("SIM_CODEC") {
        cli.opts.codec = codec != "0";
    }
    let mut out = std::io::stdout();
    match reprise_sim::cli::run(&cli, &mut out) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    }
}
