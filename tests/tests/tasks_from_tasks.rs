//! Tasks that submit tasks, over real processes: a task on a one-thread
//! worker maps work, secedes while it waits, rejoins and returns; a
//! monitor-style task fire_and_forgets tasks that report through a Queue.
//! The worker is the tests' own binary (`src/bin/test-worker.rs`), except
//! for API.md's worker example, which runs in this process as written.
use std::collections::BTreeSet;
use std::time::Duration;

use reprise::worker::{Actor, Methods, TaskContext, Worker};
use reprise::{Future, Queue};
use reprise_tests::{eventually, within, Cluster, ClusterSpec, SharedCluster};

/// One worker with one thread: a task that waits on its own tasks without
/// seceding would deadlock it.
static CLUSTER: SharedCluster = SharedCluster::new();

fn spec() -> ClusterSpec {
    ClusterSpec::new(1, 1).worker_program(env!("CARGO_BIN_EXE_test-worker"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_on_a_one_thread_worker_maps_secedes_gathers_and_rejoins() -> anyhow::Result<()> {
    let cluster = CLUSTER.get(spec()).await?;
    let client = cluster.client().await?;
    assert_eq!(within("ncores", client.ncores()).await??.values().copied().collect::<Vec<_>>(), vec![1]);
    let sum: Future<i64> = client.submit("fanout", (100,))?;
    // inc(i) for i in 0..100 is 1..=100.
    assert_eq!(within("fanout(100)", sum.result()).await??, 5050);
    // A second one right after reuses the worker's client and its slot.
    let again: Future<i64> = client.task("fanout").args((10,)).pure(false).submit()?;
    assert_eq!(within("fanout(10)", again.result()).await??, 55);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_task_fire_and_forgets_tasks_whose_items_all_arrive() -> anyhow::Result<()> {
    let cluster = CLUSTER.get(spec()).await?;
    let client = cluster.client().await?;
    let queue = Queue::new_unique(&client);
    let monitor: Future<i64> = client.submit("monitor", (queue.name(), 50))?;
    assert_eq!(within("the monitor task", monitor.result()).await??, 50);
    // The monitor returned at once; its tasks run on without any future.
    drop(monitor);
    let mut items = BTreeSet::new();
    for _ in 0..50 {
        let item: i64 = within("an item from the queue", queue.get(Some(Duration::from_secs(60)))).await??;
        assert!(items.insert(item), "item {item} arrived twice");
    }
    assert_eq!(items, (0..50).collect::<BTreeSet<i64>>());
    assert_eq!(within("qsize", queue.qsize()).await??, 0);
    Ok(())
}

// API.md, "Worker": the example as the contract spells it.
fn inc(x: i64) -> i64 {
    x + 1
}
fn add(x: i64, y: i64) -> i64 {
    x + y
}

/// The example's actor: Dask's counter.
#[derive(Default)]
struct Counter {
    n: u64,
}

impl Actor for Counter {
    type Args = ();
    fn new((): ()) -> Result<Self, String> {
        Ok(Counter::default())
    }
    fn methods(methods: &mut Methods<Self>) {
        methods.method("increment", |c: &mut Counter| {
            c.n += 1;
            c.n
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_md_worker_example_with_an_unannotated_fanout_closure_registers_and_runs() -> anyhow::Result<()> {
    // A scheduler process of its own, and no worker but the example's.
    let cluster = Cluster::start_async(ClusterSpec::new(0, 1)).await?;
    // From API.md as written (only the scheduler address differs): the
    // fanout closure has no return type written out.
    #[rustfmt::skip]
    let worker = Worker::builder()
        .scheduler(cluster.address()).nthreads(2).name("w1")
        .task("inc", inc)                                      // functions of 0..=8 arguments
        .task("add", add)
        .task_with_context("fanout", |ctx: &TaskContext, n: u64| {
            let client = ctx.client()?;   // get_client: a Client of the same cluster
            ctx.secede();                  // leave the thread pool while waiting
            let futs: Vec<reprise::Future<u64>> = client.map("inc", 0..n)?;
            let xs = ctx.block_on(client.gather(&futs))?;
            ctx.rejoin();
            Ok(xs.iter().sum::<u64>())
        })
        .actor::<Counter>("Counter")
        .build()?;
    let running = tokio::spawn(worker.run());
    let client = cluster.client().await?;
    eventually("w1 registered", || async { Ok(client.ncores().await?.len() == 1) }).await?;

    let sum: Future<u64> = client.submit("fanout", (100,))?;
    // inc(i) for i in 0..100 is 1..=100.
    assert_eq!(within("fanout(100)", sum.result()).await??, 5050);
    let three: Future<i64> = client.submit("add", (1, 2))?;
    assert_eq!(within("add(1, 2)", three.result()).await??, 3);
    let counter = within("a Counter", client.submit_actor("Counter", ())).await??;
    assert_eq!(within("increment", counter.call::<u64>("increment", ())).await??, 1);

    // `run` is a future that ends on shutdown.
    within("shutdown", client.shutdown()).await??;
    within("the worker's run", running).await???;
    Ok(())
}
