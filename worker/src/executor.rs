//! The task thread pool: exactly `nthreads` OS threads run the (blocking)
//! task functions, never the tokio reactor.
//!
//! The core hands out a job only when a thread is free, so the job queue
//! never holds more than `nthreads` jobs and the result channel never holds
//! more than `nthreads` results: both are bounded by the core's slot count.
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use reprise_proto::{Attempt, Key, TaskError};
use tokio::sync::mpsc::UnboundedSender;

use crate::core::Job;
use crate::registry::Registry;
use crate::{Error, Result};

/// A job's outcome, sent back to the service loop.
#[derive(Debug)]
pub(crate) struct JobDone {
    pub(crate) key: Key,
    pub(crate) attempt: Attempt,
    pub(crate) outcome: Result<Bytes, TaskError>,
}

/// The pool. Dropping it lets each thread exit after its current job; the
/// results of jobs still running then go nowhere (a killed worker discards them).
pub(crate) struct Executor {
    jobs: mpsc::Sender<Job>,
}

impl Executor {
    pub(crate) fn start(nthreads: usize, registry: Arc<Registry>, done: UnboundedSender<JobDone>) -> Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..nthreads {
            let queue = Arc::clone(&queue);
            let registry = Arc::clone(&registry);
            let done = done.clone();
            std::thread::Builder::new()
                .name(format!("reprise-task-{i}"))
                .spawn(move || run_jobs(&queue, &registry, &done))
                .map_err(Error::Threads)?;
        }
        Ok(Executor { jobs })
    }

    /// Queue `job` for the next free thread.
    pub(crate) fn submit(&self, job: Job) {
        // The threads outlive the sender, so this fails only if every thread
        // died, which `run_jobs` never lets a task cause.
        if self.jobs.send(job).is_err() {
            tracing::error!("task threads are gone; a job was dropped");
        }
    }
}

fn run_jobs(queue: &Mutex<mpsc::Receiver<Job>>, registry: &Registry, done: &UnboundedSender<JobDone>) {
    loop {
        let job = {
            // Only the thread holding the lock waits in `recv`; the others
            // wait for the lock. A poisoned lock cannot happen (nothing panics
            // while holding it), but is treated as the end of the pool.
            let Ok(queue) = queue.lock() else { return };
            match queue.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        let outcome = registry.call(&job.key, &job.func, &job.args, &job.inputs).map(Bytes::from);
        if let Err(e) = &outcome {
            tracing::debug!(key = %job.key, kind = ?e.kind, "task failed: {}", e.message);
        }
        if done.send(JobDone { key: job.key, attempt: job.attempt, outcome }).is_err() {
            return; // the worker is gone: discard
        }
    }
}
