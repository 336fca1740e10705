//! The client against a fake scheduler and a fake worker peer over real
//! ZeroMQ sockets on loopback. Every wait is bounded.
mod fake;

use std::collections::BTreeSet;
use std::future::IntoFuture;
use std::time::Duration;

use fake::{FakeScheduler, FakeWorker, Options};
use reprise_client::{as_completed, fire_and_forget, wait, Client, Error, Future, FutureStatus, WorkerId};
use reprise_proto::ClientMsg;
use tokio_stream::StreamExt;

/// The bound on any single wait in these tests.
const WAIT: Duration = Duration::from_secs(20);

async fn client(fake: &FakeScheduler) -> Client {
    Client::builder()
        .address(&fake.address)
        .name("test")
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap()
}

async fn bounded<F: IntoFuture>(f: F) -> F::Output {
    tokio::time::timeout(WAIT, f).await.expect("the test waited too long")
}

fn submitted(msgs: &[ClientMsg]) -> Vec<String> {
    msgs.iter()
        .flat_map(|m| match m {
            ClientMsg::Submit { tasks } => tasks.iter().map(|t| t.key.0.clone()).collect(),
            _ => vec![],
        })
        .collect()
}

#[tokio::test]
async fn submit_then_result_including_futures_as_arguments() {
    let fake = FakeScheduler::start(Options::default()).await;
    let client = client(&fake).await;
    let a: Future<i64> = client.submit("inc", (10,)).unwrap();
    let b: Future<i64> = client.submit("inc", (20,)).unwrap();
    let c: Future<i64> = client.submit("add", (&a, &b)).unwrap();
    assert!(a.key().starts_with("inc-"));
    assert_eq!(bounded(c.result()).await.unwrap(), 32);
    assert_eq!(bounded(a.clone()).await.unwrap(), 11, "IntoFuture on an owned future");
    assert_eq!(bounded(&b).await.unwrap(), 21, "IntoFuture on a reference");
    assert_eq!(c.status(), FutureStatus::Finished);
    let deps = fake.msgs().iter().find_map(|m| match m {
        ClientMsg::Submit { tasks } => tasks.iter().find(|t| t.func == "add").map(|t| t.deps.clone()),
        _ => None,
    });
    assert_eq!(deps.unwrap().iter().map(|k| k.0.clone()).collect::<Vec<_>>(), [a.key(), b.key()]);
}

#[tokio::test]
async fn identical_pure_submits_share_a_key_and_impure_ones_do_not() {
    let fake = FakeScheduler::start(Options::default()).await;
    let client = client(&fake).await;
    let a: Future<i64> = client.submit("inc", (1,)).unwrap();
    let b: Future<i64> = client.submit("inc", (1,)).unwrap();
    let c: Future<i64> = client.task("inc").args((1,)).pure(false).submit().unwrap();
    let d: Future<i64> = client.task("inc").args((1,)).key("my-key").priority(3).retries(2).workers(["w1"]).resources([("GPU", 1.0)]).submit().unwrap();
    assert_eq!(a.key(), b.key());
    assert_ne!(a.key(), c.key());
    assert_eq!(d.key(), "my-key");
    assert_eq!(bounded(client.gather(&[a, b, c, d])).await.unwrap(), vec![2, 2, 2, 2]);
    let msgs = fake.msgs();
    let keys = submitted(&msgs);
    assert_eq!(keys.len(), 3, "one submit per distinct key: {keys:?}");
    let spec = msgs.iter().find_map(|m| match m {
        ClientMsg::Submit { tasks } => tasks.iter().find(|t| t.key.0 == "my-key").cloned(),
        _ => None,
    });
    let spec = spec.unwrap();
    assert_eq!((spec.priority, spec.retries), (3, 2));
    assert_eq!(spec.workers, vec![WorkerId::from("w1")]);
    assert_eq!(spec.resources, vec![("GPU".to_owned(), 1.0)]);
}

#[tokio::test]
async fn gather_fetches_non_inline_results_in_one_request_per_worker() {
    let fake = FakeScheduler::start(Options::default()).await;
    let client = client(&fake).await;
    let futs: Vec<Future<i64>> = vec![
        client.submit("inc", (1,)).unwrap(),
        client.submit("big", (7,)).unwrap(),
        client.submit("big", (8,)).unwrap(),
        client.submit("big", (7,)).unwrap(),
    ];
    assert_eq!(bounded(client.gather(&futs)).await.unwrap(), vec![2, 7, 8, 7]);
    let gets = fake.worker.n_gets.lock().unwrap().clone();
    assert_eq!(gets.len(), 1, "one Get for both keys: {gets:?}");
    assert_eq!(gets[0].len(), 2);
    // A single result takes the same path.
    assert_eq!(bounded(futs[2].result()).await.unwrap(), 8);
}

#[tokio::test]
async fn a_result_whose_holder_is_gone_is_located_again() {
    let fake = FakeScheduler::start(Options::default()).await;
    let client = Client::builder().address(&fake.address).timeout(Duration::from_secs(1)).connect().await.unwrap();
    let moved: Future<i64> = client.submit("moved", (9,)).unwrap();
    assert_eq!(bounded(moved.result()).await.unwrap(), 9);
    assert!(fake.msgs().iter().any(|m| matches!(m, ClientMsg::Info { what: reprise_proto::InfoRequest::Locate { .. }, .. })));
}

#[tokio::test]
async fn handles_and_waits_are_send_across_tasks() {
    fn send_sync<T: Send + Sync + Clone>(_: &T) {}
    let fake = FakeScheduler::start(Options::default()).await;
    let client = client(&fake).await;
    send_sync(&client);
    let a: Future<i64> = client.submit("inc", (1,)).unwrap();
    send_sync(&a);
    let c2 = client.clone();
    let spawned = tokio::spawn(async move {
        let b: Future<i64> = c2.submit("inc", (&a,)).unwrap();
        let xs = c2.gather(&[a.clone(), b.clone()]).await?;
        let w = wait(&[a, b]).await?;
        Ok::<_, Error>((xs, w.done.len()))
    });
    assert_eq!(bounded(spawned).await.unwrap().unwrap(), (vec![2, 3], 2));
}

#[tokio::test]
async fn map_submits_one_task_per_item_in_one_batch() {
    let fake = FakeScheduler::start(Options::default()).await;
    let client = client(&fake).await;
    let futs: Vec<Future<i64>> = client.map("inc", 0..100).unwrap();
    let xs = bounded(client.gather(&futs)).await.unwrap();
    assert_eq!(xs, (1..=100).collect::<Vec<i64>>());
    let n_submit_msgs = fake.msgs().iter().filter(|m| matches!(m, ClientMsg::Submit { .. })).count();
    assert!(n_submit_msgs < 10, "submits are batched, got {n_submit_msgs} messages");
}

#[tokio::test]
async fn errors_map_to_their_kinds() {
    let fake = FakeScheduler::start(Options::default()).await;
    let client = client(&fake).await;
    let failed: Future<i64> = client.submit("fail", ("boom",)).unwrap();
    match bounded(failed.result()).await {
        Err(Error::Task(e)) => {
            assert_eq!(e.message(), "it failed");
            assert_eq!(e.key(), failed.key());
        }
        other => panic!("expected a task error, got {other:?}"),
    }
    assert_eq!(bounded(failed.exception()).await.unwrap().map(|e| e.message().to_owned()), Some("it failed".into()));
    assert_eq!(failed.status(), FutureStatus::Error);
    let unknown: Future<i64> = client.submit("nofunc", ()).unwrap();
    assert!(matches!(bounded(unknown.result()).await, Err(Error::UnknownFunction(f)) if f == "nofunc"));
    let wrong_type: Future<String> = client.submit("inc", (1,)).unwrap();
    assert!(matches!(bounded(wrong_type.result()).await, Err(Error::Codec(_))));
    let ok: Future<i64> = client.submit("inc", (1,)).unwrap();
    assert!(bounded(ok.exception()).await.unwrap().is_none());
    assert!(matches!(client.submit::<i64, _>("inc", 5), Err(Error::Codec(_))), "arguments must be a sequence");
}

#[tokio::test]
async fn wait_with_timeout_and_first_completed() {
    let fake = FakeScheduler::start(Options::default()).await;
    let client = client(&fake).await;
    let ok: Future<i64> = client.submit("inc", (1,)).unwrap();
    let never: Future<i64> = client.submit("never", ()).unwrap();
    let futs = vec![never.clone(), ok.clone()];
    let r = bounded(wait(&futs).timeout(Duration::from_millis(300))).await.unwrap();
    assert_eq!(r.done.iter().map(|f| f.key()).collect::<Vec<_>>(), [ok.key()]);
    assert_eq!(r.not_done.iter().map(|f| f.key()).collect::<Vec<_>>(), [never.key()]);
    let r = bounded(wait(&futs).first_completed()).await.unwrap();
    assert_eq!(r.done.len(), 1);
    let r = bounded(wait(std::slice::from_ref(&ok))).await.unwrap();
    assert!(r.not_done.is_empty());
    assert!(never.result_timeout(Duration::from_millis(50)).await.is_err());
}

#[tokio::test]
async fn as_completed_yields_added_futures_and_duplicates() {
    let fake = FakeScheduler::start(Options::default()).await;
    let client = client(&fake).await;
    let a: Future<i64> = client.submit("inc", (1,)).unwrap();
    let b: Future<i64> = client.submit("inc", (2,)).unwrap();
    let failed: Future<i64> = client.submit("fail", ("x",)).unwrap();
    let mut ac = as_completed(vec![a, b, failed]);
    let mut results = Vec::new();
    let mut added = false;
    while let Some(f) = bounded(ac.next()).await {
        if !added {
            let c: Future<i64> = client.submit("inc", (10,)).unwrap();
            ac.add(c.clone());
            ac.update([c]);
            added = true;
        }
        results.push(f.result().await.ok());
    }
    results.sort();
    assert_eq!(results, vec![None, Some(2), Some(3), Some(11), Some(11)]);

    let futs: Vec<Future<i64>> = client.map("inc", [5, 6]).unwrap();
    let with: Vec<(Future<i64>, reprise_client::Result<i64>)> = bounded(as_completed(futs.clone()).with_results().collect()).await;
    let mut xs: Vec<i64> = with.into_iter().map(|(_, r)| r.unwrap()).collect();
    xs.sort();
    assert_eq!(xs, [6, 7]);
    let batches: Vec<Vec<Future<i64>>> = bounded(as_completed(futs).batches().collect()).await;
    assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 2);
}

#[tokio::test]
async fn scatter_puts_on_a_worker_and_registers_with_the_scheduler() {
    let fake = FakeScheduler::start(Options::default()).await;
    let client = client(&fake).await;
    let xs: Vec<Future<i64>> = bounded(client.scatter_many(vec![5i64, 6, 5])).await.unwrap();
    assert_eq!(xs[0].key(), xs[2].key(), "equal values share a key");
    assert_eq!(xs[0].status(), FutureStatus::Finished);
    assert_eq!(fake.worker.data.lock().unwrap().len(), 2);
    let sum: Future<i64> = client.submit("add", (&xs[0], &xs[1])).unwrap();
    assert_eq!(bounded(sum.result()).await.unwrap(), 11);
    let one: Future<Vec<u8>> = bounded(client.scatter(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(bounded(one.result()).await.unwrap(), vec![1, 2, 3]);
    let scattered = fake.msgs().iter().filter(|m| matches!(m, ClientMsg::Scattered { .. })).count();
    assert_eq!(scattered, 2);
}

#[tokio::test]
async fn scatter_without_workers_fails_clearly_after_the_timeout() {
    let fake = FakeScheduler::start(Options { no_workers: true, ..Options::default() }).await;
    let client = Client::builder().address(&fake.address).timeout(Duration::from_millis(600)).connect().await.unwrap();
    assert!(matches!(bounded(client.scatter(1i64)).await, Err(Error::NoWorkers { .. })));
}

#[tokio::test]
async fn dropping_the_last_handle_releases_the_key() {
    let fake = FakeScheduler::start(Options::default()).await;
    let client = client(&fake).await;
    let a: Future<i64> = client.submit("inc", (1,)).unwrap();
    let a2 = a.clone();
    let key = a.key().to_owned();
    drop(a);
    bounded(a2.result()).await.unwrap();
    let released = |m: &ClientMsg| matches!(m, ClientMsg::Release { keys } if keys.iter().any(|k| k.0 == key));
    assert!(!fake.wait_for_msg(Duration::from_millis(200), released).await, "a clone still holds it");
    drop(a2);
    assert!(fake.wait_for_msg(WAIT, released).await);
}

#[tokio::test]
async fn cancel_marks_at_once_and_callbacks_run() {
    let fake = FakeScheduler::start(Options::default()).await;
    let client = client(&fake).await;
    let never: Future<i64> = client.submit("never", ()).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    never.add_done_callback(move |s| {
        let _ = tx.send(s);
    });
    client.cancel(&[&never]).await.unwrap();
    assert!(never.cancelled());
    assert_eq!(bounded(rx).await.unwrap(), FutureStatus::Cancelled);
    assert!(matches!(bounded(never.result()).await, Err(Error::Cancelled { key }) if key == never.key()));
    assert!(fake.wait_for_msg(WAIT, |m| matches!(m, ClientMsg::Cancel { force: false, .. })).await);
    // On a done future the callback runs at once.
    let (tx, rx) = tokio::sync::oneshot::channel();
    never.add_done_callback(move |s| {
        let _ = tx.send(s);
    });
    assert_eq!(rx.await.unwrap(), FutureStatus::Cancelled);
}

#[tokio::test]
async fn info_queries_and_fire_and_forget() {
    let fake = FakeScheduler::start(Options::default()).await;
    let client = client(&fake).await;
    let a: Future<i64> = client.submit("inc", (1,)).unwrap();
    bounded(a.result()).await.unwrap();
    let who = bounded(client.who_has([a.key(), "nope"])).await.unwrap();
    assert_eq!(who[a.key()], vec![WorkerId::from("w1")]);
    assert!(who["nope"].is_empty());
    let has = bounded(client.has_what()).await.unwrap();
    assert_eq!(has[&WorkerId::from("w1")], vec![a.key().to_owned()]);
    assert_eq!(bounded(client.ncores()).await.unwrap()[&WorkerId::from("w1")], 2);
    assert_eq!(bounded(client.scheduler_info()).await.unwrap().workers.len(), 1);
    bounded(fire_and_forget(&a)).await.unwrap();
    assert!(fake.wait_for_msg(WAIT, |m| matches!(m, ClientMsg::FireAndForget { .. })).await);
}

#[tokio::test]
async fn close_says_goodbye_and_later_calls_fail() {
    let fake = FakeScheduler::start(Options::default()).await;
    let client = client(&fake).await;
    let a: Future<i64> = client.submit("never", ()).unwrap();
    bounded(client.close()).await.unwrap();
    assert!(fake.wait_for_msg(WAIT, |m| matches!(m, ClientMsg::Goodbye)).await);
    assert!(matches!(client.submit::<i64, _>("inc", (1,)), Err(Error::Closed)));
    assert!(matches!(bounded(a.result()).await, Err(Error::Closed)));
    assert!(matches!(bounded(client.ncores()).await, Err(Error::Closed)));
}

#[tokio::test]
async fn a_bad_token_is_refused_and_the_env_token_is_used() {
    let fake = FakeScheduler::start(Options { token: Some("secret".into()), ..Options::default() }).await;
    let refused = Client::builder().address(&fake.address).auth_token("wrong").connect().await;
    assert!(matches!(&refused, Err(Error::Refused(r)) if r.contains("invalid auth token")), "{refused:?}");
    let ok = Client::builder().address(&fake.address).auth_token("secret").connect().await;
    assert!(ok.is_ok());
    std::env::set_var(reprise_client::AUTH_TOKEN_ENV, "secret");
    let from_env = Client::builder().address(&fake.address).connect().await;
    std::env::remove_var(reprise_client::AUTH_TOKEN_ENV);
    assert!(from_env.is_ok(), "{from_env:?}");
}

#[tokio::test]
async fn connect_times_out_when_nobody_answers() {
    // A bound port whose owner never speaks ZeroMQ.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("tcp://{}", listener.local_addr().unwrap());
    let r = bounded(Client::builder().address(address).timeout(Duration::from_millis(500)).connect()).await;
    assert!(matches!(r, Err(Error::Timeout)), "{r:?}");
}

#[tokio::test]
async fn unacked_submit_is_resent_to_a_restarted_scheduler() {
    let worker = FakeWorker::start().await;
    let first = FakeScheduler::start_on(0, Options { black_hole: true, ..Options::default() }, worker.clone()).await;
    let port = first.port;
    let client = Client::builder()
        .address(&first.address)
        .heartbeat(Duration::from_millis(200), Duration::from_secs(1))
        .connect()
        .await
        .unwrap();
    let id = client.id().to_owned();
    let a: Future<i64> = client.submit("inc", (41,)).unwrap();
    assert!(first.wait_for_msg(WAIT, |m| matches!(m, ClientMsg::Submit { .. })).await);
    first.stop().await;

    let second = FakeScheduler::start_on(port, Options::default(), worker).await;
    assert_eq!(bounded(a.result()).await.unwrap(), 42);
    let msgs = second.msgs();
    assert!(matches!(&msgs[0], ClientMsg::Hello { client, .. } if client.as_str() == id), "same client id: {:?}", msgs[0]);
    assert_eq!(submitted(&msgs), [a.key()], "the unacked submit, once");
    let later: Future<i64> = client.submit("inc", (1,)).unwrap();
    assert_eq!(bounded(later.result()).await.unwrap(), 2);
    let keys: BTreeSet<String> = submitted(&second.msgs()).into_iter().collect();
    assert_eq!(keys.len(), 2);
}
