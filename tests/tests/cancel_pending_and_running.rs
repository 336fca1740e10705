//! Cancelling over real processes: a future cancelled while its task runs
//! reports `Cancelled` at once and its result is discarded on the worker; a
//! future cancelled while its task waits for an input never runs, and
//! neither do its dependents. The worker is the tests' own worker binary,
//! whose tasks leave files behind, so the test sees what ran and when.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use reprise::{Error, Future, FutureStatus};
use reprise_tests::{eventually, within, Cluster, ClusterSpec, SharedCluster};

static CLUSTER: SharedCluster = SharedCluster::new();

/// One worker process with one task thread: a task queued behind another on
/// it starts only once the worker has dealt with the end of the first.
fn spec() -> ClusterSpec {
    ClusterSpec::new(1, 1).worker_program(env!("CARGO_BIN_EXE_test-worker"))
}

/// A fresh directory under the cluster's scratch dir, as a task argument.
fn fresh_dir(cluster: &Cluster, name: &str) -> anyhow::Result<(PathBuf, String)> {
    let dir = cluster.scratch_dir().join(name);
    std::fs::create_dir_all(&dir)?;
    let text = dir.to_str().context("scratch dir is not UTF-8")?.to_owned();
    Ok((dir, text))
}

fn path_text(path: &Path) -> anyhow::Result<String> {
    Ok(path.to_str().context("path is not UTF-8")?.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_task_reports_cancelled_and_discards_its_result() -> anyhow::Result<()> {
    let cluster = CLUSTER.get(spec()).await?;
    let client = cluster.client().await?;
    let (marks, marks_text) = fresh_dir(&cluster, "running")?;

    let slow: Future<()> = client.task("marked_sleep").args((marks_text, 1.5)).pure(false).submit()?;
    eventually("the slow task has started", || async { Ok(marks.join("started").exists()) }).await?;
    assert_eq!(slow.status(), FutureStatus::Pending);

    within("cancel", slow.cancel()).await??;
    assert_eq!(slow.status(), FutureStatus::Cancelled, "a cancelled future reports so at once");
    assert!(slow.cancelled());
    match within("result of a cancelled future", slow.result()).await? {
        Err(Error::Cancelled { key }) => assert_eq!(key, slow.key()),
        other => bail!("expected Error::Cancelled, got {other:?}"),
    }

    // A thread cannot be interrupted: the task runs to its end, and the
    // worker throws its result away. The next task on the worker's only
    // thread starts after that, so once it is done the result is gone for good.
    eventually("the slow task's thread has ended", || async { Ok(marks.join("finished").exists()) }).await?;
    let after: Future<i64> = client.task("inc").args((100,)).pure(false).submit()?;
    assert_eq!(within("a task after the cancelled one", after.result()).await??, 101);
    let who = within("who_has", client.who_has([slow.key()])).await??;
    assert_eq!(who.get(slow.key()).map(Vec::len).unwrap_or(0), 0, "the cancelled result is held somewhere: {who:?}");
    let held = within("has_what", client.has_what()).await??;
    assert!(held.values().all(|keys| !keys.iter().any(|k| k == slow.key())), "{held:?}");
    assert_eq!(slow.status(), FutureStatus::Cancelled, "the discarded result must not revive the future");

    within("closing the client", client.close()).await??;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_pending_task_means_it_and_its_dependents_never_run() -> anyhow::Result<()> {
    let cluster = CLUSTER.get(spec()).await?;
    let client = cluster.client().await?;
    let (dir, _) = fresh_dir(&cluster, "pending")?;
    let cancelled_out = dir.join("cancelled.txt");
    let witness_out = dir.join("witness.txt");

    // `write` waits for its input, which takes a second.
    let blocker: Future<i64> = client.task("slowinc").args((1, 1.0)).pure(false).submit()?;
    let text: Future<String> = client.submit("to_text", (&blocker,))?;
    let write: Future<()> = client.submit("write_file", (path_text(&cancelled_out)?, &text))?;
    let dependent: Future<()> = client.submit("echo", (&write,))?;

    within("cancel", write.cancel()).await??;
    assert_eq!(write.status(), FutureStatus::Cancelled);
    match within("result of a cancelled future", write.result()).await? {
        Err(Error::Cancelled { key }) => assert_eq!(key, write.key()),
        other => bail!("expected Error::Cancelled, got {other:?}"),
    }
    match within("result of a cancelled future's dependent", dependent.result()).await? {
        Err(Error::Cancelled { .. }) => {}
        other => bail!("expected the dependent to be cancelled too, got {other:?}"),
    }
    assert_eq!(dependent.status(), FutureStatus::Cancelled);

    // The input itself is not cancelled: it finishes, and another task on
    // it runs as the cancelled one would have.
    assert_eq!(within("to_text(slowinc(1))", text.result()).await??, "2");
    let witness: Future<()> = client.submit("write_file", (path_text(&witness_out)?, &text))?;
    within("the witness write", witness.result()).await??;
    assert_eq!(std::fs::read_to_string(&witness_out)?, "2");
    assert!(!cancelled_out.exists(), "the cancelled task ran and wrote {}", cancelled_out.display());
    assert_eq!(write.status(), FutureStatus::Cancelled);

    within("closing the client", client.close()).await??;
    Ok(())
}
