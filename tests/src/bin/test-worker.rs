//! A worker binary of the end-to-end tests: the stock functions plus a few
//! that leave traces on disk, so that a test can see that (and when) a task
//! ran even after every future of it was dropped. It takes the flags of
//! `reprise worker` and prints "registered" the same way; it also shows that
//! a worker binary of one's own takes a few lines.
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use reprise::worker::{stock, Worker};

#[derive(Parser, Debug)]
#[command(about = "Reprise's stock worker plus the end-to-end tests' functions")]
struct Args {
    #[arg(long, default_value = "tcp://127.0.0.1:8786")]
    scheduler: String,
    #[arg(long, default_value_t = 1)]
    nthreads: usize,
    #[arg(long)]
    name: Option<String>,
    /// File holding the shared auth token.
    #[arg(long)]
    auth_token_file: Option<PathBuf>,
}

/// Write `content` to `path` (replacing it).
fn write_file(path: String, content: String) -> Result<(), String> {
    std::fs::write(&path, content).map_err(|e| format!("cannot write {path}: {e}"))
}

/// The decimal text of `x`.
fn to_text(x: i64) -> String {
    x.to_string()
}

/// Create `dir/started`, sleep `seconds`, then create `dir/finished`: a
/// task whose start and end a test can see from outside.
fn marked_sleep(dir: String, seconds: f64) -> Result<(), String> {
    let dir = PathBuf::from(dir);
    std::fs::write(dir.join("started"), b"").map_err(|e| format!("cannot mark the start in {}: {e}", dir.display()))?;
    std::thread::sleep(Duration::try_from_secs_f64(seconds).map_err(|e| e.to_string())?);
    std::fs::write(dir.join("finished"), b"").map_err(|e| format!("cannot mark the end in {}: {e}", dir.display()))
}

/// This worker's name, for the lines `counted` writes.
static WORKER_NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Sleep `sleep_ms`, append the line `<label> <worker name>` to the file
/// `log` (one line per execution, so that a test can count how often and
/// where each task ran), and return `1 + sum(inputs)`. The line is written
/// with one `O_APPEND` write, which concurrent workers on one machine do
/// not interleave.
fn counted(log: String, label: String, inputs: Vec<i64>, sleep_ms: u64) -> Result<i64, String> {
    use std::io::Write;
    std::thread::sleep(Duration::from_millis(sleep_ms));
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(|e| format!("cannot open the execution log {log}: {e}"))?;
    let worker = WORKER_NAME.get().map_or("?", String::as_str);
    file.write_all(format!("{label} {worker}\n").as_bytes()).map_err(|e| format!("cannot append to {log}: {e}"))?;
    Ok(inputs.into_iter().fold(1, i64::wrapping_add))
}

/// `counted` for a result too large to travel inline: record the execution
/// as `counted` does and return `n` zero bytes (a CBOR array, so `n`
/// encoded bytes), which only the worker that made them holds.
fn counted_blob(log: String, label: String, n: u64) -> Result<Vec<u8>, String> {
    counted(log, label, Vec::new(), 0)?;
    Ok(vec![0; usize::try_from(n).map_err(|e| e.to_string())?])
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // As `reprise worker` does: one line naming what went wrong.
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut builder = stock::register(Worker::builder())
        .scheduler(args.scheduler.clone())
        .nthreads(args.nthreads)
        .task("write_file", write_file)
        .task("to_text", to_text)
        .task("marked_sleep", marked_sleep)
        .task("counted", counted)
        .task("counted_blob", counted_blob);
    if let Some(name) = args.name {
        builder = builder.name(name);
    }
    if let Some(path) = &args.auth_token_file {
        let token = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        builder = builder.auth_token(token.trim());
    }
    let mut handle = builder.build()?.spawn();
    let _ = WORKER_NAME.set(handle.name().to_owned());
    let peer = handle.ready().await?;
    handle.registered().await.context("registering with the scheduler")?;
    println!("test-worker {} (peer socket {peer}) registered with {}", handle.name(), args.scheduler);
    handle.join().await.context("the worker stopped")?;
    Ok(())
}
