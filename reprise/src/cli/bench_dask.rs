//! Running `dask_bench.py --only coordination` right after our own
//! measurement, and setting the two side by side.
use std::path::PathBuf;
use std::process::Command;

use anyhow::{ensure, Context};

use super::bench_coordination::Measured;

/// How to run Dask's benchmark.
#[derive(Clone, Debug)]
pub struct DaskRun {
    pub python: PathBuf,
    pub script: PathBuf,
    /// Iterations per workload (`--coord-n`).
    pub n: u64,
    pub repeats: usize,
}

/// One `workload=coord_…` line of Dask's output.
#[derive(Clone, Debug)]
pub struct DaskLine {
    /// `lock`, `semaphore`, `variable` or `queue`.
    pub primitive: String,
    pub ops_per_s: f64,
    pub foreign_cpu: Option<f64>,
}

/// Run Dask's coordination workloads (it starts its own local cluster).
pub fn run_coordination(run: &DaskRun) -> anyhow::Result<Vec<DaskLine>> {
    ensure!(run.script.exists(), "Dask's benchmark script is not at {} (pass --dask-script)", run.script.display());
    eprintln!("running Dask's coordination benchmark with {} (takes a minute)…", run.python.display());
    let output = Command::new(&run.python)
        .arg(&run.script)
        .args(["--only", "coordination", "--coord-n", &run.n.to_string(), "--repeats", &run.repeats.to_string()])
        .output()
        .with_context(|| format!("running {} {}", run.python.display(), run.script.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success(),
        "Dask's benchmark failed ({}):\n{}\n{}",
        output.status,
        stdout,
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<DaskLine> = stdout.lines().filter_map(parse_line).collect();
    for line in stdout.lines().filter(|l| l.starts_with("workload=coord_")) {
        println!("dask: {line}");
    }
    ensure!(!lines.is_empty(), "no coordination lines in Dask's output:\n{stdout}");
    Ok(lines)
}

/// `workload=coord_lock n=1000 … ops_per_s=2468.1 … foreign_cpu=0.02`.
fn parse_line(line: &str) -> Option<DaskLine> {
    let field = |name: &str| line.split_whitespace().find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='));
    let primitive = field("workload")?.strip_prefix("coord_")?.to_owned();
    let ops_per_s = field("ops_per_s")?.parse().ok()?;
    let foreign_cpu = field("foreign_cpu").and_then(|v| v.parse().ok());
    Some(DaskLine { primitive, ops_per_s, foreign_cpu })
}

/// One line per primitive both measured: our ops/s, Dask's, and the ratio.
pub fn print_comparison(ours: &[Measured], theirs: &[DaskLine]) {
    println!("{:<10} {:>14} {:>12} {:>8}", "primitive", "reprise ops/s", "dask ops/s", "ratio");
    for m in ours {
        match theirs.iter().find(|d| d.primitive == m.primitive.name()) {
            Some(d) => {
                let note = d.foreign_cpu.filter(|f| *f > 0.1).map(|f| format!("  (dask run contended: foreign_cpu={f:.2})"));
                println!(
                    "{:<10} {:>14.0} {:>12.0} {:>7.1}x{}",
                    m.primitive.name(),
                    m.ops_per_s,
                    d.ops_per_s,
                    m.ops_per_s / d.ops_per_s,
                    note.unwrap_or_default()
                );
            }
            None => println!("{:<10} {:>14.0} {:>12} {:>8}", m.primitive.name(), m.ops_per_s, "-", "-"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dask_lines_are_parsed_by_field_name() {
        let line = "workload=coord_lock n=1000 median_s=0.8 tasks_per_s=1250 tasks=1000 ops_per_s=2500 runs_s=0.8,0.9 foreign_cpu=0.03";
        let parsed = parse_line(line).expect("a coordination line");
        assert_eq!(parsed.primitive, "lock");
        assert_eq!(parsed.ops_per_s, 2500.0);
        assert_eq!(parsed.foreign_cpu, Some(0.03));
        assert!(parse_line("workload=map_noop n=10 median_s=1 tasks_per_s=10").is_none());
    }
}
