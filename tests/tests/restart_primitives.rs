//! Coordination primitives survive `kill -9` of the scheduler exactly: a
//! held Lock, a Semaphore with 1 of 2 leases held, a set Event, a Queue of
//! 3 items, a Variable holding a Future and a published dataset are as they
//! were after the restart, and their holders can release them.
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{ensure, Context};
use reprise::{Client, Event, Future, Lock, Queue, Semaphore, Variable};
use reprise_tests::{start_scheduler_async, start_workers_async, within};

/// How long a try that must fail waits.
const SHORT: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_primitive_is_exactly_as_before_after_kill_9_and_its_holders_can_release() -> anyhow::Result<()> {
    let dir = tempfile::Builder::new().prefix("reprise-restart-c-").tempdir()?;
    let data_dir = dir.path().join("scheduler");
    // Leases must not run out while the scheduler is down and coming back.
    let flags = ["--grace", "30", "--lease-timeout", "120"];
    let scheduler = start_scheduler_async(&data_dir, "tcp://127.0.0.1:0", &flags).await?;
    let address = scheduler.address.clone();
    let worker_bin = PathBuf::from(env!("CARGO_BIN_EXE_test-worker"));
    let workers = start_workers_async(&worker_bin, &address, &["rc-w0"], 2).await?;
    let connect = |name: &str| Client::builder().address(address.clone()).name(name).timeout(Duration::from_secs(20)).connect();
    let holder = within("connecting the holder", connect("holder")).await??;

    let lock = Lock::new(&holder, "r-lock");
    let lock_guard = within("acquiring the lock", lock.acquire()).await??;
    let sem = Semaphore::new(&holder, "r-sem", 2);
    let sem_guard = within("acquiring a lease", sem.acquire()).await??;
    within("setting the event", Event::new(&holder, "r-event").set()).await??;
    let queue = Queue::new(&holder, "r-queue");
    for item in [10i64, 20, 30] {
        within("putting an item", queue.put(&item)).await??;
    }
    let answer: Future<i64> = holder.submit("inc", (41,))?;
    within("inc(41)", answer.result()).await??;
    within("setting the variable", Variable::new(&holder, "r-var").set_future(&answer)).await??;
    let published: Future<i64> = holder.submit("inc", (99,))?;
    within("publishing", holder.publish_dataset("r-dataset", &published)).await??;
    // Only the primitives keep these results alive from now on.
    drop((answer, published));

    scheduler.proc.kill();
    let scheduler = start_scheduler_async(&data_dir, &address, &flags).await?;
    let other = within("connecting a second client", connect("other")).await??;

    ensure!(within("locked", Lock::new(&other, "r-lock").locked()).await??, "the lock is no longer held");
    let taken = within("trying the held lock", Lock::new(&other, "r-lock").try_acquire(SHORT)).await??;
    ensure!(taken.is_none(), "a second client took the held lock");
    let other_sem = Semaphore::new(&other, "r-sem", 2);
    ensure!(within("semaphore value", other_sem.get_value()).await?? == 1, "the held lease is gone");
    let second_lease = within("the free lease", other_sem.try_acquire(SHORT)).await??.context("the free lease is gone")?;
    ensure!(within("a third lease", other_sem.try_acquire(SHORT)).await??.is_none(), "a third lease was granted of 2");
    within("releasing the second lease", second_lease.release()).await??;
    ensure!(within("is_set", Event::new(&other, "r-event").is_set()).await??, "the event is no longer set");
    ensure!(within("qsize", Queue::new(&other, "r-queue").qsize()).await?? == 3, "the queue lost items");
    let var_future: Future<i64> = within("variable", Variable::new(&other, "r-var").get_future(Some(SHORT))).await??;
    ensure!(within("the variable's future", var_future.result()).await?? == 42);
    let dataset: Future<i64> = within("dataset", other.get_dataset("r-dataset")).await??;
    ensure!(within("the dataset's future", dataset.result()).await?? == 100);
    let names = within("list_datasets", other.list_datasets()).await??;
    ensure!(names == vec!["r-dataset".to_owned()], "datasets {names:?}");

    // The holders, whose client re-attached on its own, let go.
    within("releasing the lock", lock_guard.release()).await??;
    within("releasing the lease", sem_guard.release()).await??;
    ensure!(!within("locked", Lock::new(&other, "r-lock").locked()).await??, "the released lock is still held");
    ensure!(within("semaphore value", other_sem.get_value()).await?? == 0, "the released lease is still held");
    let guard = within("taking the released lock", Lock::new(&other, "r-lock").try_acquire(SHORT)).await??;
    within("releasing it again", guard.context("the released lock cannot be taken")?.release()).await??;
    let other_queue = Queue::new(&other, "r-queue");
    for expected in [10i64, 20, 30] {
        ensure!(within("queue get", other_queue.get::<i64>(Some(SHORT))).await?? == expected, "queue order changed");
    }
    ensure!(!within("the holder's view", lock.locked()).await??, "the holder still sees its lock held");

    within("closing", other.close()).await??;
    within("closing", holder.close()).await??;
    drop((workers, scheduler));
    Ok(())
}
