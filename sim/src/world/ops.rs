//! Carrying out the scenario's operations.
use std::collections::BTreeMap;

use reprise_client::session::KeyStatus;
use reprise_proto::{
    InfoRequest, Key, LeaseOn, PeerRequest, PrimitiveOp, RequestId, ScatteredItem, StoredValue, TaskSpec, WorkerId,
    INLINE_BYTES_MAX,
};

use super::model::{Item, PrimReq};
use super::net::PeerId;
use super::{Ev, World};
use crate::funcs::{self, TaskArgs};
use crate::invariants::Violation;
use crate::scenario::{
    CrashPoint, DatasetAct, EventAct, FuncKind, Op, PeerRef, QueueAct, TaskDef, ValueSrc, VariableAct,
};

impl World<'_> {
    fn client_slot(&self, client: u8) -> usize {
        usize::from(client) % self.clients.len()
    }

    fn worker_slot(&self, worker: u8) -> usize {
        usize::from(worker) % self.workers.len()
    }

    fn peer(&self, peer: PeerRef) -> PeerId {
        match peer {
            PeerRef::Worker(w) => PeerId::Worker(self.worker_slot(w)),
            PeerRef::Client(c) => PeerId::Client(self.client_slot(c)),
        }
    }

    pub(super) fn run_op(&mut self, i: usize) -> Result<(), Violation> {
        let op = self.ops[i].op.clone();
        self.stats.ops += 1;
        self.trace(|| format!("op {i}: {op:?}"));
        match op {
            Op::Submit { client, tasks } => {
                let c = self.client_slot(client);
                for def in &tasks {
                    self.submit(c, def);
                }
                self.pump_client(c)
            }
            Op::Share { client, from, pick } => {
                let (c, f) = (self.client_slot(client), self.client_slot(from));
                let spec = self.clients[f].pick(pick).and_then(|k| self.model.specs.get(&k)).cloned();
                if let (Some(spec), Some(session)) = (spec, self.clients[c].session.as_mut()) {
                    let key = spec.key.clone();
                    session.submit(spec);
                    self.clients[c].add_handle(&key);
                }
                self.pump_client(c)
            }
            Op::AddRef { client, pick } => self.with_pick(client, pick, |w, c, key| {
                if w.clients[c].session.as_mut().is_some_and(|s| s.add_ref(key)) {
                    w.clients[c].add_handle(key);
                }
            }),
            Op::Release { client, pick } => self.with_pick(client, pick, |w, c, key| w.drop_one(c, key)),
            Op::Cancel { client, pick } => self.with_pick(client, pick, |w, c, key| {
                let now = w.now;
                if let Some(s) = w.clients[c].session.as_mut() {
                    s.cancel(std::slice::from_ref(key), now);
                }
            }),
            Op::FireAndForget { client, pick, drop } => self.with_pick(client, pick, |w, c, key| {
                let now = w.now;
                if let Some(s) = w.clients[c].session.as_mut() {
                    s.fire_and_forget(std::slice::from_ref(key), now);
                }
                if drop {
                    w.drop_one(c, key);
                }
            }),
            Op::Retry { client, pick } => self.with_pick(client, pick, |w, c, key| {
                let now = w.now;
                if let Some(s) = w.clients[c].session.as_mut() {
                    s.retry(std::slice::from_ref(key), now);
                }
            }),
            Op::Scatter { client, worker, big } => {
                // A client scatters to a worker the scheduler lists as
                // connected (as `Client::scatter` asks it for the workers).
                let c = self.client_slot(client);
                let live: Vec<usize> = self.sched.core.as_ref().map_or(Vec::new(), |s| {
                    s.live_workers().filter_map(|id| self.workers.iter().position(|n| &n.id == id)).collect()
                });
                match live.get(usize::from(worker) % live.len().max(1)) {
                    Some(&w) => self.scatter(c, w, big),
                    None => {
                        self.trace(|| format!("c{c} cannot scatter: the scheduler lists no worker"));
                        Ok(())
                    }
                }
            }
            Op::Info { client, what } => {
                let c = self.client_slot(client);
                let keys: Vec<Key> = self.clients[c].pick(0).into_iter().collect();
                let request = match what {
                    0 => InfoRequest::WhoHas { keys },
                    1 => InfoRequest::HasWhat,
                    2 => InfoRequest::Ncores,
                    3 => InfoRequest::SchedulerInfo,
                    _ => InfoRequest::Locate { keys },
                };
                if let Some(s) = self.clients[c].session.as_mut() {
                    s.info(request);
                }
                self.pump_client(c)
            }
            Op::Lock { client, name, hold_ms, timeout_ms } => {
                let on = LeaseOn::Lock(format!("lock{}", name % 2));
                self.acquire(client, on, 1, hold_ms, timeout_ms)
            }
            Op::Semaphore { client, name, hold_ms, timeout_ms } => {
                let n = name % 2;
                self.acquire(client, LeaseOn::Semaphore(format!("sem{n}")), u64::from(n) + 1, hold_ms, timeout_ms)
            }
            Op::Variable { client, name, act } => self.variable_op(self.client_slot(client), name, act),
            Op::Queue { client, name, act } => self.queue_op(self.client_slot(client), name, act),
            Op::Event { client, name, act } => {
                let c = self.client_slot(client);
                let name = format!("ev{}", name % 2);
                match act {
                    EventAct::Set => {
                        self.request(c, PrimitiveOp::EventSet { name: name.clone() }, PrimReq::EventSet { name }, None)
                    }
                    EventAct::Clear => self.request(c, PrimitiveOp::EventClear { name }, PrimReq::EventOther, None),
                    EventAct::IsSet => self.request(c, PrimitiveOp::EventIsSet { name }, PrimReq::EventOther, None),
                    EventAct::Wait { timeout_ms } => {
                        let op = PrimitiveOp::EventWait { name: name.clone(), timeout_ms: timeout_ms.map(u64::from) };
                        self.request(c, op, PrimReq::EventWait { name }, None)
                    }
                }
            }
            Op::Dataset { client, name, act } => self.dataset_op(self.client_slot(client), name, act),
            Op::CrashScheduler { at, tail, down_ms } => {
                match at {
                    CrashPoint::Now => self.crash_scheduler(tail, u64::from(down_ms), "now"),
                    _ if self.sched.is_up() => self.sched.arm(at, tail, u64::from(down_ms)),
                    _ => {}
                }
                Ok(())
            }
            Op::CrashWorker { worker, down_ms } => {
                let w = self.worker_slot(worker);
                self.crash_worker(w, u64::from(down_ms), "crashes");
                Ok(())
            }
            Op::DropLink { peer, notify } => {
                let peer = self.peer(peer);
                let gen = match peer {
                    PeerId::Worker(w) => self.workers[w].link,
                    PeerId::Client(c) => self.clients[c].link,
                };
                if let Some(gen) = gen.filter(|g| self.net.link(*g).is_some()) {
                    self.trace(|| format!("!! {peer}'s link {gen} breaks"));
                    self.break_link(peer, gen, notify);
                }
                Ok(())
            }
            Op::Partition { peer, ms } => {
                let peer = self.peer(peer);
                let until = self.now + u64::from(ms);
                self.trace(|| format!("~  {peer} partitioned until {until}"));
                self.net.partition(peer, until);
                self.schedule(until, Ev::Heal { peer });
                Ok(())
            }
            Op::Stall { peer, ms } => {
                let peer = self.peer(peer);
                let until = self.now + u64::from(ms);
                self.trace(|| format!("~  {peer}'s messages to the scheduler stall until {until}"));
                self.net.stall_up(peer, until);
                self.schedule(until, Ev::Heal { peer });
                Ok(())
            }
            Op::Vanish { client } => {
                let c = self.client_slot(client);
                self.vanish_client(c);
                Ok(())
            }
            Op::Goodbye { client } => {
                let c = self.client_slot(client);
                self.goodbye_client(c)
            }
        }
    }

    /// Send a primitive request for client `c`, remembering what it asked.
    /// `alive` is a future the client keeps one more reference to until the
    /// answer comes, as `set_future` and `put_future` do, so that a release
    /// resent first after a reconnect cannot let the scheduler forget it.
    pub(super) fn request(
        &mut self,
        c: usize,
        op: PrimitiveOp,
        request: PrimReq,
        alive: Option<Key>,
    ) -> Result<(), Violation> {
        let node = &mut self.clients[c];
        if let Some(session) = node.session.as_mut().filter(|s| !s.is_closed()) {
            let alive = alive.filter(|key| session.add_ref(key));
            let req = session.primitive(op);
            node.open.insert(req, alive);
            self.model.prim_requests.insert((node.id.clone(), req), request);
        }
        self.pump_client(c)
    }

    /// Ask for a lease on `on`, to give back `hold_ms` after it is granted.
    fn acquire(
        &mut self,
        client: u8,
        on: LeaseOn,
        max_leases: u64,
        hold_ms: u16,
        timeout_ms: Option<u16>,
    ) -> Result<(), Violation> {
        let c = self.client_slot(client);
        let timeout_ms = timeout_ms.map(u64::from);
        let op = match &on {
            LeaseOn::Lock(name) => PrimitiveOp::LockAcquire { name: name.clone(), timeout_ms },
            LeaseOn::Semaphore(name) => PrimitiveOp::SemaphoreAcquire { name: name.clone(), max_leases, timeout_ms },
        };
        self.request(c, op, PrimReq::Acquire { on, max_leases, hold_ms: u64::from(hold_ms) }, None)
    }

    /// Give back the lease of request `req`, if it is still this client's.
    pub(super) fn prim_release(&mut self, c: usize, inc: u64, req: RequestId) -> Result<(), Violation> {
        let node = &self.clients[c];
        if node.incarnation != inc {
            return Ok(());
        }
        let Some(PrimReq::Acquire { on, .. }) = self.model.prim_requests.get(&(node.id.clone(), req)).cloned() else {
            return Ok(());
        };
        let op = match on {
            LeaseOn::Lock(name) => PrimitiveOp::LockRelease { name, lease: req },
            LeaseOn::Semaphore(name) => PrimitiveOp::SemaphoreRelease { name, lease: req },
        };
        self.request(c, op, PrimReq::Release, None)
    }

    /// What client `c` stores: a future it holds, or a fresh plain value
    /// (recorded as an item of `queue` when it goes into one).
    fn stored_value(&mut self, c: usize, src: ValueSrc, queue: Option<&str>) -> (StoredValue, Option<Key>) {
        if let ValueSrc::Future(pick) = src {
            if let Some(key) = self.live_future(c, pick) {
                return (StoredValue::Future(key.clone()), Some(key));
            }
        }
        (self.fresh_value(queue), None)
    }

    /// A plain value never stored before, recorded as an item of `queue`
    /// when it goes into one.
    pub(super) fn fresh_value(&mut self, queue: Option<&str>) -> StoredValue {
        let n = self.model.next_value;
        self.model.next_value += 1;
        let bytes = format!("v{n}").into_bytes();
        if let Some(queue) = queue {
            self.model.items.insert(bytes.clone(), Item { queue: queue.to_owned(), ..Item::default() });
        }
        StoredValue::Inline(bytes)
    }

    /// The future `pick` selects among client `c`'s handles, unless it is
    /// cancelled (the client refuses to store a cancelled future).
    fn live_future(&self, c: usize, pick: u16) -> Option<Key> {
        let key = self.clients[c].pick(pick)?;
        let session = self.clients[c].session.as_ref()?;
        (session.status(&key) != Some(&KeyStatus::Cancelled)).then_some(key)
    }

    fn variable_op(&mut self, c: usize, name: u8, act: VariableAct) -> Result<(), Violation> {
        let name = format!("var{}", name % 2);
        match act {
            VariableAct::Set(src) => {
                let (value, alive) = self.stored_value(c, src, None);
                let op = PrimitiveOp::VariableSet { name: name.clone(), value: value.clone() };
                self.request(c, op, PrimReq::VarSet { name, value }, alive)
            }
            VariableAct::Get { timeout_ms } => {
                let floor = self.model.variables.get(&name).map_or(0, |r| r.floor);
                let op = PrimitiveOp::VariableGet { name: name.clone(), timeout_ms: timeout_ms.map(u64::from) };
                self.request(c, op, PrimReq::VarGet { name, floor }, None)
            }
            VariableAct::Delete => {
                self.request(c, PrimitiveOp::VariableDelete { name: name.clone() }, PrimReq::VarDelete { name }, None)
            }
        }
    }

    fn queue_op(&mut self, c: usize, name: u8, act: QueueAct) -> Result<(), Violation> {
        let name = format!("q{}", name % 2);
        match act {
            QueueAct::Put { value, maxsize, timeout_ms } => {
                let (value, alive) = self.stored_value(c, value, Some(&name));
                let op = PrimitiveOp::QueuePut {
                    name: name.clone(),
                    value: value.clone(),
                    maxsize: u64::from(maxsize),
                    timeout_ms: timeout_ms.map(u64::from),
                };
                self.request(c, op, PrimReq::QueuePut { name, value, bounded: maxsize > 0 }, alive)
            }
            QueueAct::Get { timeout_ms } => {
                let op = PrimitiveOp::QueueGet { name: name.clone(), timeout_ms: timeout_ms.map(u64::from) };
                self.request(c, op, PrimReq::QueueGet { name, batch: false }, None)
            }
            QueueAct::GetBatch { n } => {
                let op = PrimitiveOp::QueueGetBatch { name: name.clone(), n: u64::from(n) };
                self.request(c, op, PrimReq::QueueGet { name, batch: true }, None)
            }
            QueueAct::Size => self.request(c, PrimitiveOp::QueueSize { name }, PrimReq::QueueSize, None),
        }
    }

    fn dataset_op(&mut self, c: usize, name: u8, act: DatasetAct) -> Result<(), Violation> {
        let name = format!("ds{}", name % 2);
        match act {
            DatasetAct::Publish { pick } => match self.live_future(c, pick) {
                Some(key) => {
                    let op = PrimitiveOp::DatasetPublish { name: name.clone(), key: key.clone() };
                    self.request(c, op, PrimReq::DsPublish { name, key: key.clone() }, Some(key))
                }
                None => {
                    self.trace(|| format!("c{c} holds no future to publish"));
                    Ok(())
                }
            },
            DatasetAct::Get => {
                let floor = self.model.datasets.get(&name).map_or(0, |r| r.floor);
                self.request(c, PrimitiveOp::DatasetGet { name: name.clone() }, PrimReq::DsGet { name, floor }, None)
            }
            DatasetAct::List => {
                let floors = self.model.datasets.iter().map(|(n, r)| (n.clone(), r.floor)).collect();
                self.request(c, PrimitiveOp::DatasetList, PrimReq::DsList { floors }, None)
            }
            DatasetAct::Unpublish => {
                let op = PrimitiveOp::DatasetUnpublish { name: name.clone() };
                self.request(c, op, PrimReq::DsUnpublish { name }, None)
            }
        }
    }

    /// Run `f` on the key `pick` selects among client's handles, if any.
    fn with_pick(&mut self, client: u8, pick: u16, f: impl FnOnce(&mut Self, usize, &Key)) -> Result<(), Violation> {
        let c = self.client_slot(client);
        if let Some(key) = self.clients[c].pick(pick) {
            f(self, c, &key);
        }
        self.pump_client(c)
    }

    /// Drop one of the client's handles to `key`.
    pub(super) fn drop_one(&mut self, c: usize, key: &Key) {
        if self.clients[c].drop_handle(key) {
            let now = self.now;
            if let Some(s) = self.clients[c].session.as_mut() {
                s.release_ref(key, now);
            }
        }
    }

    /// Build `def` into a spec over keys the client holds, predict its
    /// value, and submit it.
    fn submit(&mut self, c: usize, def: &TaskDef) {
        let id = self.model.next_task;
        self.model.next_task += 1;
        let mut deps: Vec<Key> = Vec::new();
        for pick in &def.deps {
            if let Some(dep) = self.clients[c].pick(*pick) {
                if !deps.contains(&dep) && self.model.expected.contains_key(&dep) {
                    deps.push(dep);
                }
            }
        }
        let key = Key(format!("t{id}"));
        let func = match def.func {
            FuncKind::Common => funcs::FUNC,
            FuncKind::Rare => funcs::FUNC_RARE,
            FuncKind::Missing => funcs::FUNC_MISSING,
        };
        // Only satisfiable restrictions: a task nobody could ever run waits
        // in no-worker forever, as in Dask, which says nothing about liveness.
        let mut restrict = def.restrict.map(|r| usize::from(r) % self.workers.len());
        if def.func == FuncKind::Rare {
            restrict = restrict.map(|r| r - r % 2);
        }
        if def.gpu {
            restrict = restrict.map(|_| 0);
        }
        let args = TaskArgs { id, dur_ms: u64::from(def.dur_ms), fail: def.fail, big: def.big };
        let mut spec = TaskSpec::new(key.clone(), func, funcs::encode_args(&args, &deps), deps.clone());
        spec.priority = i32::from(def.priority);
        spec.retries = u32::from(def.retries);
        spec.workers = restrict.map(|r| WorkerId(format!("w{r}"))).into_iter().collect();
        if def.gpu {
            spec.resources = vec![(funcs::GPU.to_owned(), 1.0)];
        }
        let inputs: BTreeMap<Key, bytes::Bytes> =
            deps.iter().filter_map(|d| self.model.expected.get(d).map(|v| (d.clone(), v.clone()))).collect();
        let inputs: Vec<(Key, bytes::Bytes)> = inputs.into_iter().collect();
        self.model.expected.insert(key.clone(), funcs::task_value(id, def.big, &inputs));
        self.model.specs.insert(key.clone(), spec.clone());
        if let Some(session) = self.clients[c].session.as_mut() {
            session.submit(spec);
            self.clients[c].add_handle(&key);
        }
    }

    /// Put a value on worker `w`'s peer socket, then register it.
    fn scatter(&mut self, c: usize, w: usize, big: bool) -> Result<(), Violation> {
        let n = self.model.next_scatter;
        self.model.next_scatter += 1;
        let key = Key(format!("s{n}"));
        let data = funcs::scatter_value(n, big);
        let Some(core) = self.workers[w].core.as_mut() else {
            self.trace(|| format!("c{c} cannot scatter {key}: w{w} is down"));
            return Ok(());
        };
        let items = vec![(key.clone(), serde_bytes::ByteBuf::from(data.to_vec()))];
        core.handle_peer_request(PeerRequest::Put { req: RequestId(1), items });
        self.model.expected.insert(key.clone(), data.clone());
        self.pump_worker(w)?;
        let inline = (data.len() <= INLINE_BYTES_MAX).then(|| data.to_vec());
        let item = ScatteredItem { key: key.clone(), nbytes: data.len() as u64, inline };
        let (id, address) = (self.workers[w].id.clone(), self.workers[w].address.clone());
        if let Some(session) = self.clients[c].session.as_mut() {
            session.scattered(&id, &address, vec![item]);
            self.clients[c].add_handle(&key);
        }
        self.pump_client(c)
    }
}
