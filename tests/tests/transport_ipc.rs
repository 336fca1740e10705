//! The same processes over `ipc://` sockets instead of TCP: the scheduler
//! listens on a Unix socket, each worker's peer socket is one too, and data
//! too large to travel inline moves between them.
use anyhow::Context;
use reprise::Future;
use reprise_tests::{connect, reprise_bin, start_scheduler, start_worker, within};
use serde_bytes::ByteBuf;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_and_workers_serve_over_ipc_sockets() -> anyhow::Result<()> {
    let dir = tempfile::Builder::new().prefix("reprise-ipc-").tempdir()?;
    let socket = |name: &str| -> anyhow::Result<String> {
        Ok(format!("ipc://{}", dir.path().join(name).to_str().context("temp dir is not UTF-8")?))
    };
    let (scheduler_listen, w0_listen, w1_listen) = (socket("scheduler.sock")?, socket("w0.sock")?, socket("w1.sock")?);
    let (data_dir, bin) = (dir.path().join("data"), reprise_bin()?);
    let scheduler = tokio::task::spawn_blocking(move || start_scheduler(&data_dir, &scheduler_listen, &[])).await??;
    assert!(scheduler.address.starts_with("ipc://"), "{}", scheduler.address);
    let address = scheduler.address.clone();
    let workers = tokio::task::spawn_blocking(move || {
        anyhow::Ok([
            start_worker(&bin, &address, "e2e-ipc-w0", 1, &["--listen", &w0_listen])?,
            start_worker(&bin, &address, "e2e-ipc-w1", 1, &["--listen", &w1_listen])?,
        ])
    })
    .await??;

    let client = connect(&scheduler.address, None).await?;
    let info = within("scheduler_info", client.scheduler_info()).await??;
    assert_eq!(info.workers.len(), 2);
    assert!(info.workers.iter().all(|w| w.address.starts_with("ipc://")), "{:?}", info.workers);

    let a: Future<i64> = client.submit("inc", (1,))?;
    let b: Future<i64> = client.submit("add", (&a, 41))?;
    assert_eq!(within("add(inc(1), 41)", b.result()).await??, 43);

    // 200 kB made on one worker, echoed on the other: fetched through the
    // first worker's ipc peer socket by the second, then by the client.
    let big: Future<ByteBuf> = client.task("bytes").args((200_000u64,)).workers(["e2e-ipc-w0"]).submit()?;
    let copies: Vec<Future<ByteBuf>> = (0..4)
        .map(|i| client.task("echo").args((&big,)).key(format!("echo-ipc-{i}")).workers(["e2e-ipc-w1"]).submit())
        .collect::<reprise::Result<_>>()?;
    for copy in within("gathering the echoes", client.gather(&copies)).await?? {
        assert_eq!(copy.len(), 200_000);
    }
    assert_eq!(within("fetching the large value", big.result()).await??.len(), 200_000);
    let who = within("who_has", client.who_has([big.key(), copies[0].key()])).await??;
    let names = |key: &str| who.get(key).map(|ws| ws.iter().map(ToString::to_string).collect::<Vec<_>>()).unwrap_or_default();
    assert!(names(big.key()).contains(&"e2e-ipc-w0".to_owned()), "{who:?}");
    assert!(names(copies[0].key()).contains(&"e2e-ipc-w1".to_owned()), "{who:?}");

    within("closing the client", client.close()).await??;
    drop((workers, scheduler));
    Ok(())
}
