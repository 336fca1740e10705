//! A scheduler started with `--auth-token-file` refuses clients and workers
//! that do not present its token, with an error that says so, and serves
//! those that do.
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use reprise::{Client, Error, Future};
use reprise_tests::{connect, reprise_bin, spawn_worker, within, ClusterSpec, Proc, SharedCluster};

static CLUSTER: SharedCluster = SharedCluster::new();

const TOKEN: &str = "e2e-secret-token-5f2c";

/// One stock worker, started with the right token.
fn spec() -> ClusterSpec {
    ClusterSpec::new(1, 1).auth_token(TOKEN)
}

/// Connect with `token` (or none) and return the client library's own error.
async fn try_connect(address: &str, token: Option<&str>) -> anyhow::Result<reprise::Result<Client>> {
    let mut builder = Client::builder().address(address).name("e2e-auth").timeout(Duration::from_secs(20));
    if let Some(token) = token {
        builder = builder.auth_token(token);
    }
    within("connecting a client", builder.connect()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_with_a_wrong_or_missing_token_is_refused_with_a_clear_error() -> anyhow::Result<()> {
    let cluster = CLUSTER.get(spec()).await?;
    for token in [Some("not-the-token"), Some(""), None] {
        match try_connect(cluster.address(), token).await? {
            Err(Error::Refused(reason)) => {
                assert!(reason.contains("invalid auth token"), "token {token:?}: unclear reason {reason:?}");
                let shown = Error::Refused(reason).to_string();
                assert!(shown.contains("refused") && shown.contains("token"), "token {token:?}: {shown}");
            }
            Err(other) => bail!("token {token:?}: expected Error::Refused, got {other:?}"),
            Ok(client) => {
                let _ = within("closing a client that should not exist", client.close()).await;
                bail!("token {token:?}: the scheduler accepted a client without the right token")
            }
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_with_the_right_token_gets_results() -> anyhow::Result<()> {
    let cluster = CLUSTER.get(spec()).await?;
    let client = connect(cluster.address(), Some(TOKEN)).await?;
    let a: Future<i64> = client.submit("inc", (1,))?;
    let b: Future<i64> = client.submit("add", (&a, &a))?;
    assert_eq!(within("add(inc(1), inc(1))", b.result()).await??, 4);
    let cores = within("ncores", client.ncores()).await??;
    assert_eq!(cores.keys().map(ToString::to_string).collect::<Vec<_>>(), vec!["e2e-w0".to_owned()]);
    within("closing the client", client.close()).await??;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_with_a_wrong_token_is_refused_and_exits_with_the_reason() -> anyhow::Result<()> {
    let cluster = CLUSTER.get(spec()).await?;
    let wrong = cluster.scratch_dir().join("wrong-token");
    std::fs::write(&wrong, "not-the-token\n")?;
    let wrong_text = wrong.to_str().context("scratch dir is not UTF-8")?.to_owned();

    let programs = [reprise_bin()?, env!("CARGO_BIN_EXE_test-worker").into()];
    for (i, program) in programs.iter().enumerate() {
        let name = format!("e2e-intruder-{i}");
        let worker = spawn_worker(program, cluster.address(), &name, 1, &["--auth-token-file", &wrong_text])?;
        let (status, stdout, stderr) = wait_exit(worker).await?;
        let shown = program_name(program);
        assert!(!status.success(), "{shown} with a wrong token exited with {status}");
        assert!(!stdout.contains("registered"), "{shown} with a wrong token says it registered:\n{stdout}");
        assert!(
            stderr.contains("refused") && stderr.contains("invalid auth token"),
            "{shown} with a wrong token should say it was refused for its token; stderr:\n{stderr}"
        );
    }

    // The scheduler lists only the worker with the right token.
    let client = connect(cluster.address(), Some(TOKEN)).await?;
    let cores = within("ncores", client.ncores()).await??;
    assert_eq!(cores.keys().map(ToString::to_string).collect::<Vec<_>>(), vec!["e2e-w0".to_owned()]);
    within("closing the client", client.close()).await??;
    Ok(())
}

/// Wait (off the runtime's threads) for `proc` to exit: its status, stdout and stderr.
async fn wait_exit(proc: Proc) -> anyhow::Result<(std::process::ExitStatus, String, String)> {
    tokio::task::spawn_blocking(move || {
        let status = proc.wait_exit(Duration::from_secs(60))?;
        Ok((status, proc.stdout(), proc.stderr()))
    })
    .await?
}

fn program_name(program: &Path) -> String {
    program.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}
