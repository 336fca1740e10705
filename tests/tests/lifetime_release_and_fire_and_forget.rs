//! How long results live, over real processes: a key's data stays on its
//! worker while some future of it is alive and is freed once the last one
//! is dropped; `fire_and_forget` keeps a chain running after all its futures
//! are dropped (its last task writes a file), then lets it go. The workers
//! are the tests' own worker binary (`src/bin/test-worker.rs`).
use std::collections::BTreeMap;

use anyhow::Context;
use reprise::{fire_and_forget, Client, Future};
use reprise_tests::{eventually, within, ClusterSpec, SharedCluster};

static CLUSTER: SharedCluster = SharedCluster::new();

fn spec() -> ClusterSpec {
    ClusterSpec::new(2, 2).worker_program(env!("CARGO_BIN_EXE_test-worker"))
}

/// Which workers hold `key`, according to `has_what`.
async fn holders_of(client: &Client, key: &str) -> anyhow::Result<Vec<String>> {
    let held = within("has_what", client.has_what()).await??;
    Ok(held.into_iter().filter(|(_, keys)| keys.iter().any(|k| k == key)).map(|(w, _)| w.to_string()).collect())
}

/// Whether no worker holds any of `keys`, according to `who_has`.
async fn none_held(client: &Client, keys: &[String]) -> anyhow::Result<bool> {
    let who: BTreeMap<String, Vec<_>> = within("who_has", client.who_has(keys)).await??;
    Ok(who.values().all(Vec::is_empty))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_future_frees_its_data_on_the_worker() -> anyhow::Result<()> {
    let cluster = CLUSTER.get(spec()).await?;
    let client = cluster.client().await?;

    let fut: Future<i64> = client.task("inc").args((7,)).pure(false).submit()?;
    assert_eq!(within("inc(7)", fut.result()).await??, 8);
    let key = fut.key().to_owned();
    let holders = holders_of(&client, &key).await?;
    assert_eq!(holders.len(), 1, "one worker should hold {key}: {holders:?}");

    // A clone is one more reference: dropping the original keeps the data.
    let clone = fut.clone();
    drop(fut);
    let still = within("a clone's result", clone.result()).await??;
    assert_eq!(still, 8);
    assert_eq!(holders_of(&client, &key).await?, holders, "the data went while a clone was alive");

    drop(clone);
    eventually("has_what no longer lists the dropped key", || async { Ok(holders_of(&client, &key).await?.is_empty()) })
        .await?;
    assert!(none_held(&client, std::slice::from_ref(&key)).await?);

    within("closing the client", client.close()).await??;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_two_clients_hold_stays_until_both_drop_it() -> anyhow::Result<()> {
    let cluster = CLUSTER.get(spec()).await?;
    let first = cluster.client().await?;
    let second = cluster.client().await?;

    // A pure call: both clients get the same key.
    let a: Future<i64> = first.submit("inc", (987_654_321,))?;
    let b: Future<i64> = second.submit("inc", (987_654_321,))?;
    assert_eq!(a.key(), b.key());
    assert_eq!(within("first client's result", a.result()).await??, 987_654_322);
    assert_eq!(within("second client's result", b.result()).await??, 987_654_322);
    let key = a.key().to_owned();

    drop(a);
    // Still wanted by the second client: still on its worker.
    let again: Future<i64> = second.submit("inc", (987_654_321,))?;
    assert_eq!(within("the second client's result again", again.result()).await??, 987_654_322);
    assert_eq!(holders_of(&second, &key).await?.len(), 1);

    drop((b, again));
    eventually("the key is freed once both clients dropped it", || async { Ok(holders_of(&first, &key).await?.is_empty()) })
        .await?;

    within("closing the first client", first.close()).await??;
    within("closing the second client", second.close()).await??;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fire_and_forget_runs_a_chain_whose_futures_were_all_dropped() -> anyhow::Result<()> {
    let cluster = CLUSTER.get(spec()).await?;
    let client = cluster.client().await?;
    let out = cluster.scratch_dir().join("fire-and-forget.txt");
    let out_text = out.to_str().context("scratch dir is not UTF-8")?.to_owned();

    let keys: Vec<String> = {
        let x: Future<i64> = client.task("slowinc").args((41, 0.5)).pure(false).submit()?;
        let y: Future<i64> = client.submit("inc", (&x,))?;
        let text: Future<String> = client.submit("to_text", (&y,))?;
        let write: Future<()> = client.submit("write_file", (out_text, &text))?;
        within("fire_and_forget", fire_and_forget(&write)).await??;
        [x.key(), y.key(), text.key(), write.key()].map(str::to_owned).to_vec()
        // Every future of the chain is dropped here, before its first task ends.
    };
    assert!(!out.exists(), "the chain ended before its futures were dropped; make its first task slower");

    eventually("the chain's last task wrote its file", || async {
        Ok(std::fs::read_to_string(&out).is_ok_and(|s| s == "43"))
    })
    .await?;
    // Once it has finished and nobody holds it, the chain is released.
    eventually("no worker holds the chain's data", || none_held(&client, &keys)).await?;

    within("closing the client", client.close()).await??;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fire_and_forget_outlives_the_client_that_submitted_it() -> anyhow::Result<()> {
    let cluster = CLUSTER.get(spec()).await?;
    let out = cluster.scratch_dir().join("outlives-client.txt");
    let out_text = out.to_str().context("scratch dir is not UTF-8")?.to_owned();

    let client = cluster.client().await?;
    let x: Future<i64> = client.task("slowinc").args((99, 0.5)).pure(false).submit()?;
    let text: Future<String> = client.submit("to_text", (&x,))?;
    let write: Future<()> = client.submit("write_file", (out_text, &text))?;
    within("fire_and_forget", fire_and_forget(&write)).await??;
    let keys: Vec<String> = [x.key(), text.key(), write.key()].map(str::to_owned).to_vec();
    within("closing the client", client.close()).await??;
    drop((x, text, write));
    assert!(!out.exists(), "the chain ended before the client closed; make its first task slower");

    eventually("the chain's last task wrote its file", || async {
        Ok(std::fs::read_to_string(&out).is_ok_and(|s| s == "100"))
    })
    .await?;
    let observer = cluster.client().await?;
    eventually("no worker holds the chain's data", || none_held(&observer, &keys)).await?;
    within("closing the observer", observer.close()).await??;
    Ok(())
}
