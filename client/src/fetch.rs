//! Moving data between the client and workers' peer sockets: fetching
//! finished results (batched per worker, with `Locate` and retries when a
//! holder is gone) and putting scattered values.
use std::collections::BTreeMap;
use std::time::Duration;

use reprise_proto::{DepLocation, InfoReply, InfoRequest, Key, PeerReply, PeerRequest, WorkerId, WorkerInfo};
use serde_bytes::ByteBuf;

use crate::error::{Error, Result};
use crate::shared::Shared;

/// Fetch rounds (each followed by a `Locate`) before a key is given up on.
pub const FETCH_ROUNDS_MAX: u32 = 6;
/// The pause after a failed round doubles from this, up to `FETCH_PAUSE_MAX`.
const FETCH_PAUSE_MIN: Duration = Duration::from_millis(50);
const FETCH_PAUSE_MAX: Duration = Duration::from_secs(2);
/// Keys asked of one worker in one `Get`, bounding the reply's size.
pub const GET_KEYS_MAX: usize = 1_000;
/// How often to look again for a worker while none is connected.
const NO_WORKER_POLL: Duration = Duration::from_millis(200);

/// A key not fetched yet: where to look, and why the last look failed.
struct Missing {
    holders: Vec<(WorkerId, String)>,
    reason: String,
}

/// Where one wanted key's data is.
#[derive(Clone, Debug)]
pub(crate) struct Wanted {
    pub key: Key,
    pub holders: Vec<(WorkerId, String)>,
}

/// The encoded values of `wanted`, by key. Each round asks one holder per key
/// (a different one each round), batched per worker; keys still missing are
/// located again through the scheduler before the next round.
pub(crate) async fn fetch_all(shared: &Shared, wanted: Vec<Wanted>) -> Result<BTreeMap<Key, Vec<u8>>> {
    let mut got = BTreeMap::new();
    let mut missing: BTreeMap<Key, Missing> = wanted
        .into_iter()
        .map(|w| (w.key, Missing { holders: w.holders, reason: "no worker holds it".to_owned() }))
        .collect();
    let mut pause = FETCH_PAUSE_MIN;
    for round in 0..FETCH_ROUNDS_MAX {
        let mut by_address: BTreeMap<String, Vec<Key>> = BTreeMap::new();
        for (key, Missing { holders, .. }) in &missing {
            if !holders.is_empty() {
                let (_, address) = &holders[round as usize % holders.len()];
                by_address.entry(address.clone()).or_default().push(key.clone());
            }
        }
        let calls = by_address.into_iter().flat_map(|(address, keys)| {
            let chunks: Vec<Vec<Key>> = keys.chunks(GET_KEYS_MAX).map(<[Key]>::to_vec).collect();
            chunks.into_iter().map(move |keys| get_from(shared, address.clone(), keys))
        });
        for (keys, outcome) in futures::future::join_all(calls).await {
            match outcome {
                Ok(items) => {
                    for (key, data) in items {
                        if let Some(data) = data {
                            missing.remove(&key);
                            got.insert(key, data.into_vec());
                        }
                    }
                }
                Err(reason) => {
                    for k in &keys {
                        if let Some(m) = missing.get_mut(k) {
                            m.reason = reason.clone();
                        }
                    }
                }
            }
        }
        if missing.is_empty() {
            return Ok(got);
        }
        if round + 1 < FETCH_ROUNDS_MAX {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(FETCH_PAUSE_MAX);
            locate(shared, &mut missing, &mut got).await?;
            if missing.is_empty() {
                return Ok(got);
            }
        }
    }
    match missing.into_iter().next() {
        Some((key, m)) => Err(Error::Fetch { key: key.0, reason: m.reason }),
        None => Ok(got),
    }
}

/// One `Get` to one worker: `(asked keys, outcome)`.
async fn get_from(
    shared: &Shared,
    address: String,
    keys: Vec<Key>,
) -> (Vec<Key>, std::result::Result<Vec<(Key, Option<ByteBuf>)>, String>) {
    let asked = keys.clone();
    let reply = shared.peers.call(&address, |req| PeerRequest::Get { req, keys }).await;
    let outcome = match reply {
        Ok(PeerReply::Data { items, .. }) => Ok(items),
        Ok(PeerReply::Error { message, .. }) => Err(format!("worker {address}: {message}")),
        Ok(other) => Err(format!("worker {address} answered a get with {other:?}")),
        Err(e) => Err(e.message),
    };
    (asked, outcome)
}

/// Ask the scheduler where the missing keys are now; values that came back
/// inline are done.
async fn locate(
    shared: &Shared,
    missing: &mut BTreeMap<Key, Missing>,
    got: &mut BTreeMap<Key, Vec<u8>>,
) -> Result<()> {
    let keys: Vec<Key> = missing.keys().cloned().collect();
    let reply = shared.info(InfoRequest::Locate { keys }).await?;
    let InfoReply::Locate(locations) = reply else {
        return Err(Error::Protocol(format!("asked to locate keys, got {reply:?}")));
    };
    for DepLocation { key, holders, inline } in locations {
        if let Some(data) = inline {
            missing.remove(&key);
            got.insert(key, data);
        } else if let Some(m) = missing.get_mut(&key) {
            m.holders = holders;
        }
    }
    Ok(())
}

/// The connected workers, waiting (up to the client timeout) for one to come.
pub(crate) async fn workers(shared: &Shared) -> Result<Vec<WorkerInfo>> {
    let started = tokio::time::Instant::now();
    loop {
        let reply = shared.info(InfoRequest::SchedulerInfo).await?;
        let InfoReply::SchedulerInfo(info) = reply else {
            return Err(Error::Protocol(format!("asked for scheduler info, got {reply:?}")));
        };
        if !info.workers.is_empty() {
            return Ok(info.workers);
        }
        if started.elapsed() >= shared.config.timeout {
            return Err(Error::NoWorkers { waited: started.elapsed() });
        }
        tokio::time::sleep(NO_WORKER_POLL).await;
    }
}

/// Store `items` on `worker`'s peer socket.
pub(crate) async fn put(shared: &Shared, worker: &WorkerInfo, items: Vec<(Key, ByteBuf)>) -> Result<()> {
    let reply = shared.peers.call(&worker.address, |req| PeerRequest::Put { req, items }).await;
    let reason = match reply {
        Ok(PeerReply::Stored { .. }) => return Ok(()),
        Ok(PeerReply::Error { message, .. }) => message,
        Ok(other) => format!("unexpected answer {other:?}"),
        Err(e) => e.message,
    };
    Err(Error::Scatter(format!("worker {} ({}) did not store the data: {reason}", worker.id, worker.address)))
}
