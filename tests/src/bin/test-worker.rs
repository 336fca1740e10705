//! A worker binary of the end-to-end tests: the stock functions plus a few
//! that leave traces on disk, so that a test can see that (and when) a task
//! ran even after every future of it was dropped; tasks that submit tasks;
//! and the actors of Dask's docs (a counter, a parameter server). It takes
//! the flags of `reprise worker` and prints "registered" the same way; it
//! also shows that a worker binary of one's own takes a few lines.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use reprise::worker::stock::{self, Counter};
use reprise::worker::{Actor, Methods, TaskContext, Worker};

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

// ---------------------------------------------------------------------------
// Tasks that submit tasks, and actors (tests/tests/tasks_from_tasks.rs,
// tests/tests/actors_*.rs, tests/tests/cluster_*.rs).
// ---------------------------------------------------------------------------

/// Map `inc` over `0..n` from inside a task, wait for the results while
/// seceded (so that a one-thread worker can run them), rejoin, and sum.
fn fanout(ctx: &TaskContext, n: i64) -> reprise::Result<i64> {
    let client = ctx.client()?;
    ctx.secede();
    let futs: Vec<reprise::Future<i64>> = client.map("inc", 0..n)?;
    let xs = ctx.block_on(client.gather(&futs))?;
    ctx.rejoin();
    Ok(xs.iter().sum())
}

/// Put `item` on the cluster's Queue `queue`.
fn push_to_queue(ctx: &TaskContext, queue: String, item: i64) -> reprise::Result<()> {
    let client = ctx.client()?;
    ctx.block_on(reprise::Queue::new(&client, queue).put(&item))
}

/// A monitor-style task: submit `n` tasks that each push one item to the
/// Queue `queue`, fire_and_forget them, and return without waiting.
fn monitor(ctx: &TaskContext, queue: String, n: i64) -> reprise::Result<i64> {
    let client = ctx.client()?;
    for i in 0..n {
        let fut: reprise::Future<()> = client.submit("push_to_queue", (&queue, i))?;
        ctx.block_on(reprise::fire_and_forget(&fut))?;
    }
    Ok(n)
}

/// The worker's name, for `run`.
fn worker_name(ctx: &TaskContext) -> Option<String> {
    ctx.worker_id().map(ToString::to_string)
}

/// The parameter server of Dask's actor docs: named arrays, `put` and `get`.
#[derive(Default)]
struct ParameterServer {
    data: BTreeMap<String, Vec<f64>>,
}

impl Actor for ParameterServer {
    type Args = ();
    fn new((): ()) -> Result<Self, String> {
        Ok(ParameterServer::default())
    }
    fn methods(methods: &mut Methods<Self>) {
        methods
            .method("put", |ps: &mut ParameterServer, key: String, value: Vec<f64>| {
                ps.data.insert(key, value);
            })
            .method("get", |ps: &mut ParameterServer, key: String| {
                ps.data.get(&key).cloned().ok_or_else(|| format!("no parameters named {key:?}"))
            });
    }
}

/// One gradient step of Dask's example: the gradient of the squared error
/// `(params - data)^2` is `2 (params - data)`.
fn train(params: &[f64], lr: f64, data: &[f64]) -> Vec<f64> {
    params.iter().zip(data).map(|(p, d)| p - lr * 2.0 * (p - d)).collect()
}

/// One iteration on the worker: get the parameters from the server,
/// train on data of ones, put them back; return their mean.
fn ps_train(ctx: &TaskContext, ps: reprise::ActorHandle, lr: f64) -> reprise::Result<f64> {
    let params: Vec<f64> = ctx.block_on(ps.call("get", ("parameters",)))?;
    let data = vec![1.0; params.len()];
    let params = train(&params, lr, &data);
    ctx.block_on(ps.call::<()>("put", ("parameters", &params)))?;
    Ok(params.iter().sum::<f64>() / params.len().max(1) as f64)
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
        .task("counted_blob", counted_blob)
        .task_with_context("fanout", fanout)
        .task_with_context("push_to_queue", push_to_queue)
        .task_with_context("monitor", monitor)
        .task_with_context("worker_name", worker_name)
        .task_with_context("ps_train", ps_train)
        .actor::<Counter>("Counter")
        .actor::<ParameterServer>("ParameterServer");
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
