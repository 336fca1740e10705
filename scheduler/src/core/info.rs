//! Answers to clients' information requests. They change nothing; the
//! management requests that also travel as `Info` are `cluster`'s.
use std::collections::BTreeMap;

use reprise_proto::{InfoReply, InfoRequest, SchedulerInfo, WorkerInfo};

use super::scheduler::Scheduler;

impl Scheduler {
    /// The answer to a question; `None` for a management request.
    pub(crate) fn info(&self, what: &InfoRequest) -> Option<InfoReply> {
        let state = &self.state;
        Some(match what {
            InfoRequest::WhoHas { keys } => {
                InfoReply::WhoHas(keys.iter().map(|k| (k.clone(), state.who_has(k))).collect())
            }
            // Every known worker is listed, idle ones with an empty list.
            InfoRequest::HasWhat => InfoReply::HasWhat(
                state.workers().map(|(id, w)| (id.clone(), w.has_what().iter().cloned().collect())).collect(),
            ),
            InfoRequest::Ncores => {
                InfoReply::Ncores(state.workers().map(|(id, w)| (id.clone(), w.nthreads())).collect())
            }
            InfoRequest::SchedulerInfo => InfoReply::SchedulerInfo(self.scheduler_info()),
            InfoRequest::Locate { keys } => InfoReply::Locate(keys.iter().map(|k| self.location(k)).collect()),
            InfoRequest::Replicate { .. } | InfoRequest::Rebalance | InfoRequest::Restart | InfoRequest::Shutdown => {
                return None
            }
        })
    }

    fn scheduler_info(&self) -> SchedulerInfo {
        let workers = self
            .state
            .workers()
            .map(|(id, w)| WorkerInfo {
                id: id.clone(),
                address: w.address().to_owned(),
                nthreads: w.nthreads(),
                n_processing: w.processing().len() as u64,
                n_keys: w.has_what().len() as u64,
                functions: w.functions().iter().cloned().collect(),
            })
            .collect();
        let tasks_by_state: BTreeMap<String, u64> =
            self.state.counts_by_state().into_iter().map(|(name, n)| (name.to_owned(), n)).collect();
        SchedulerInfo {
            workers,
            n_clients: self.state.clients().count() as u64,
            tasks_by_state,
            last_seq: self.last_seq,
        }
    }
}
