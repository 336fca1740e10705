//! `reprise demo`, run as a process, goes through the whole futures
//! walkthrough on its embedded cluster and ends successfully.
use std::time::Duration;

use reprise_tests::{reprise_bin, Proc};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reprise_demo_runs_to_completion() -> anyhow::Result<()> {
    let demo = Proc::spawn("demo", &reprise_bin()?, &["demo"])?;
    let (status, stdout) = tokio::task::spawn_blocking(move || {
        let status = demo.wait_exit(Duration::from_secs(120))?;
        anyhow::Ok((status, demo.stdout()))
    })
    .await??;
    assert!(status.success(), "reprise demo exited with {status}");
    assert!(stdout.contains("done in"), "reprise demo did not finish its walkthrough:\n{stdout}");
    assert!(stdout.contains("c = add(a, b) -> 32"), "the demo's first step is missing:\n{stdout}");
    Ok(())
}
