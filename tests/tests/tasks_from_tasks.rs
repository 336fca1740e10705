//! Tasks that submit tasks, over real processes: a task on a one-thread
//! worker maps work, secedes while it waits, rejoins and returns; a
//! monitor-style task fire_and_forgets tasks that report through a Queue.
//! The worker is the tests' own binary (`src/bin/test-worker.rs`).
use std::collections::BTreeSet;
use std::time::Duration;

use reprise::{Future, Queue};
use reprise_tests::{within, ClusterSpec, SharedCluster};

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
