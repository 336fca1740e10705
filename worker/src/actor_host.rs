//! The actors living on this worker: one thread per actor runs its calls
//! one at a time, in the order they arrived, so that no call ever waits for
//! a task slot and no task ever waits for an actor.
//!
//! The host is shared: the service loop starts and drops actors, while the
//! peer socket's receive task hands calls straight to the actors' threads,
//! so that a busy service loop never delays an actor call.
use std::collections::BTreeMap;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Mutex, MutexGuard, PoisonError};

use reprise_proto::{Key, TaskError};

use crate::actor::ActorBox;

/// The most actors one worker keeps.
pub(crate) const ACTORS_MAX: usize = 10_000;
/// Calls queued for one actor before more are refused.
pub(crate) const ACTOR_CALLS_QUEUED_MAX: usize = 10_000;

/// Where a call's outcome goes (it runs on the actor's thread).
pub(crate) type Reply = Box<dyn FnOnce(Result<Vec<u8>, TaskError>) + Send>;

struct Call {
    method: String,
    args: Vec<u8>,
    reply: Reply,
}

/// The actors by the key of the task that created them.
#[derive(Default)]
pub(crate) struct ActorHost {
    actors: Mutex<BTreeMap<Key, SyncSender<Call>>>,
}

impl ActorHost {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<Key, SyncSender<Call>>> {
        // Nothing panics while holding the lock; a poisoned map is still whole.
        self.actors.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keep `instance` under `key` and start its thread. Refused (the
    /// instance dropped) past [`ACTORS_MAX`] or if no thread can start.
    pub(crate) fn start(&self, key: Key, mut instance: ActorBox) -> Result<(), String> {
        let full = {
            let actors = self.lock();
            actors.len() >= ACTORS_MAX && !actors.contains_key(&key)
        };
        if full {
            return Err(format!("this worker already keeps {ACTORS_MAX} actors"));
        }
        let (calls, queue) = mpsc::sync_channel::<Call>(ACTOR_CALLS_QUEUED_MAX);
        let thread_key = key.clone();
        std::thread::Builder::new()
            .name(format!("reprise-actor-{key}"))
            .spawn(move || {
                // Ends once the host lets go of the actor and its queued calls are done.
                while let Ok(call) = queue.recv() {
                    let outcome = instance.call(&call.method, &call.args).map_err(|f| f.into_task_error(&thread_key));
                    (call.reply)(outcome);
                }
            })
            .map_err(|e| format!("cannot start the actor's thread: {e}"))?;
        self.lock().insert(key, calls);
        Ok(())
    }

    /// Queue a call of `method` on the actor `key`. `Err` gives the reply
    /// back with why the call cannot be made (no such actor, queue full).
    pub(crate) fn call(&self, key: &Key, method: String, args: Vec<u8>, reply: Reply) -> Result<(), (Reply, String)> {
        let Some(calls) = self.lock().get(key).cloned() else {
            return Err((reply, format!("no actor {key} lives here (it was released, or its worker restarted)")));
        };
        match calls.try_send(Call { method, args, reply }) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(call)) => {
                Err((call.reply, format!("actor {key} has {ACTOR_CALLS_QUEUED_MAX} calls waiting; try again later")))
            }
            Err(TrySendError::Disconnected(call)) => Err((call.reply, format!("actor {key} has stopped"))),
        }
    }

    /// Let go of every actor for which `keep` is false (its data was freed).
    pub(crate) fn retain(&self, mut keep: impl FnMut(&Key) -> bool) {
        self.lock().retain(|k, _| keep(k));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use reprise_proto::{decode, encode};

    use super::*;
    use crate::actor::{ActorType, Methods};
    use crate::context::TaskContext;
    use crate::Actor;

    /// Records the order calls ran in; `slow` sleeps first, so that a call
    /// that overtook it would show.
    struct Recorder(Vec<u64>);

    impl Actor for Recorder {
        type Args = ();
        fn new((): ()) -> Result<Self, String> {
            Ok(Recorder(Vec::new()))
        }
        fn methods(methods: &mut Methods<Self>) {
            methods.method("push", |r: &mut Recorder, x: u64, sleep_ms: u64| {
                std::thread::sleep(Duration::from_millis(sleep_ms));
                r.0.push(x);
                r.0.clone()
            });
        }
    }

    fn instance() -> ActorBox {
        let ty = ActorType::of::<Recorder>("Recorder");
        ty.create(&TaskContext::detached(Key::from("a")), "actor:Recorder", &encode(&()).unwrap(), &[]).unwrap().1
    }

    #[test]
    fn calls_on_one_actor_run_one_at_a_time_in_arrival_order() {
        let host = ActorHost::default();
        host.start(Key::from("a"), instance()).unwrap();
        let (tx, rx) = mpsc::channel();
        let in_flight = Arc::new(Mutex::new(0u32));
        for i in 0..20u64 {
            let tx = tx.clone();
            let in_flight = Arc::clone(&in_flight);
            let sleep_ms = if i % 5 == 0 { 20 } else { 0 };
            *in_flight.lock().unwrap() += 1;
            let reply: Reply = Box::new(move |out| {
                *in_flight.lock().unwrap() -= 1;
                tx.send(out).unwrap();
            });
            host.call(&Key::from("a"), "push".into(), encode(&(i, sleep_ms)).unwrap(), reply).map_err(|e| e.1).unwrap();
        }
        let mut last = Vec::new();
        for _ in 0..20 {
            let out = rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
            last = decode::<Vec<u64>>(&out).unwrap();
        }
        assert_eq!(last, (0..20).collect::<Vec<_>>());
        assert_eq!(*in_flight.lock().unwrap(), 0);
    }

    #[test]
    fn a_call_on_an_unknown_or_released_actor_is_refused_with_a_reason() {
        let host = ActorHost::default();
        host.start(Key::from("a"), instance()).unwrap();
        host.retain(|k| k.as_str() != "a");
        assert!(host.is_empty());
        let reply: Reply = Box::new(|_| {});
        let (_, why) = host.call(&Key::from("a"), "push".into(), Vec::new(), reply).err().unwrap();
        assert!(why.contains("no actor a"), "{why}");
    }
}
