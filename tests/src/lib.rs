//! Helpers for the end-to-end tests: start the real `reprise` binary (and the
//! test worker binary) as separate processes on free loopback ports, wait
//! for them with timeouts, and kill every process on drop.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{bail, Context};

/// How long any process gets to print that it is ready.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The `reprise` binary of this workspace, built (once per test process) in
/// the same profile and target dir as the tests, so it is never stale.
pub fn reprise_bin() -> anyhow::Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT.get_or_init(|| build_reprise().map_err(|e| format!("{e:#}"))).clone().map_err(anyhow::Error::msg)
}

fn build_reprise() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test> → target/<profile>
    let profile_dir = exe.parent().and_then(Path::parent).context("unexpected test executable location")?;
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", "reprise", "--bin", "reprise"]);
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status().context("running cargo build -p reprise")?;
    if !status.success() {
        bail!("cargo build -p reprise failed");
    }
    let bin = profile_dir.join(format!("reprise{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        bail!("built reprise but cannot find it at {}", bin.display());
    }
    Ok(bin)
}

/// A child process that is killed (and reaped) when dropped.
pub struct Proc {
    pub name: String,
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    /// Start `program args…`, capturing its stdout lines; stderr is inherited
    /// so that a failing test shows the process's logs.
    pub fn spawn(name: &str, program: &Path, args: &[&str]) -> anyhow::Result<Proc> {
        let mut child = Command::new(program)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, lines) = mpsc::channel();
        let tag = name.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                eprintln!("[{tag}] {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Proc { name: name.to_owned(), child, lines })
    }

    /// Wait for a stdout line containing `needle`; returns the line.
    pub fn wait_for_line(&self, needle: &str, timeout: Duration) -> anyhow::Result<String> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Ok(line),
                Ok(_) => {}
                Err(_) => bail!("{} did not print {needle:?} within {timeout:?}", self.name),
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9`: the process gets no chance to clean up.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A scheduler process on a free loopback port with its own data dir.
pub struct SchedulerProc {
    pub proc: Proc,
    pub address: String,
}

/// Start `reprise scheduler` on `listen` (use `tcp://127.0.0.1:0` for a free
/// port) and wait until it prints its address.
pub fn start_scheduler(data_dir: &Path, listen: &str, extra: &[&str]) -> anyhow::Result<SchedulerProc> {
    let bin = reprise_bin()?;
    let dir = data_dir.to_str().context("data dir is not UTF-8")?;
    let mut args = vec!["scheduler", "--listen", listen, "--data-dir", dir];
    args.extend_from_slice(extra);
    let proc = Proc::spawn("scheduler", &bin, &args)?;
    let line = proc.wait_for_line("listening on ", START_TIMEOUT)?;
    let address = line.rsplit("listening on ").next().context("no address")?.trim().to_owned();
    Ok(SchedulerProc { proc, address })
}

/// Start a worker process (`reprise worker` or a custom worker binary that
/// takes the same flags) and wait until it has registered.
pub fn start_worker(program: &Path, scheduler: &str, name: &str, nthreads: u32, extra: &[&str]) -> anyhow::Result<Proc> {
    let n = nthreads.to_string();
    let mut args: Vec<&str> = Vec::new();
    if program.file_stem().is_some_and(|s| s == "reprise") {
        args.push("worker");
    }
    args.extend_from_slice(&["--scheduler", scheduler, "--name", name, "--nthreads", &n]);
    args.extend_from_slice(extra);
    let proc = Proc::spawn(name, program, &args)?;
    proc.wait_for_line("registered", START_TIMEOUT)?;
    Ok(proc)
}
