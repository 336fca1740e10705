//! The session core driven by hand: messages in, batches and outputs out,
//! time advanced explicitly.
use reprise_proto::{
    ClientId, ClientMsg, DepLocation, InfoReply, InfoRequest, Key, KeyState, KeyUpdate, RequestId, ScatteredItem,
    TaskError, TaskErrorKind, TaskSpec, ToClient, WorkerId,
};

use super::*;

/// A session plus a clock, checking invariants after every step.
struct Check {
    s: Session,
    now_ms: u64,
}

impl Check {
    fn new() -> Check {
        let s = Session::new(ClientId::from("me-1"), "me", Some("tok".into()), Timing::default());
        Check { s, now_ms: 0 }
    }

    /// A session that has said hello and been welcomed, with nothing left to send.
    fn ready() -> Check {
        let mut c = Check::new();
        c.s.handle_connected(c.now_ms);
        assert!(matches!(c.sent()[..], [ClientMsg::Hello { .. }]));
        c.recv(ToClient::Welcome { scheduler: "s".into() });
        c.sent();
        c.outputs();
        c
    }

    fn recv(&mut self, msg: ToClient) {
        self.s.handle_message(msg, self.now_ms);
        self.ok();
    }

    fn advance(&mut self, ms: u64) {
        self.now_ms += ms;
        self.s.handle_timeout(self.now_ms);
        self.ok();
    }

    /// Everything the session sends now, batch boundaries removed.
    fn sent(&mut self) -> Vec<ClientMsg> {
        self.batches().into_iter().flatten().collect()
    }

    fn batches(&mut self) -> Vec<Vec<ClientMsg>> {
        let mut out = Vec::new();
        while let Some(batch) = self.s.poll_transmit(self.now_ms) {
            out.push(batch);
        }
        self.ok();
        out
    }

    fn outputs(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.s.poll_output()).collect()
    }

    /// Drop the connection and reconnect: returns what is sent after `Welcome`.
    fn reconnect(&mut self) -> Vec<ClientMsg> {
        self.s.handle_disconnected();
        self.ok();
        self.s.handle_connected(self.now_ms);
        let hello = self.sent();
        assert!(matches!(hello[..], [ClientMsg::Hello { ref client, .. }] if client.as_str() == "me-1"), "{hello:?}");
        self.recv(ToClient::Welcome { scheduler: "s2".into() });
        let outputs = self.outputs();
        assert!(outputs.contains(&Output::Welcome { scheduler: "s2".into() }), "{outputs:?}");
        self.sent()
    }

    fn ok(&self) {
        if let Err(e) = self.s.check_invariants() {
            panic!("invariant broken: {e}");
        }
    }
}

fn spec(func: &str, n: u8, deps: &[&Key]) -> TaskSpec {
    TaskSpec::new(Key(format!("{func}-{n}")), func, vec![0x81, n], deps.iter().map(|k| (*k).clone()).collect())
}

fn submitted_keys(msgs: &[ClientMsg]) -> Vec<String> {
    msgs.iter()
        .flat_map(|m| match m {
            ClientMsg::Submit { tasks } => tasks.iter().map(|t| t.key.0.clone()).collect(),
            _ => Vec::new(),
        })
        .collect()
}

fn released_keys(msgs: &[ClientMsg]) -> Vec<String> {
    msgs.iter()
        .flat_map(|m| match m {
            ClientMsg::Release { keys } => keys.iter().map(|k| k.0.clone()).collect(),
            _ => Vec::new(),
        })
        .collect()
}

fn finished(key: &Key, inline: &[u8]) -> ToClient {
    ToClient::Update(KeyUpdate {
        key: key.clone(),
        state: KeyState::Finished {
            nbytes: inline.len() as u64,
            location: DepLocation { key: key.clone(), holders: vec![], inline: Some(inline.to_vec()) },
        },
    })
}

fn erred(key: &Key) -> ToClient {
    let error = TaskError::new(TaskErrorKind::Raised, key.clone(), "boom");
    ToClient::Update(KeyUpdate { key: key.clone(), state: KeyState::Erred(error) })
}

#[test]
fn only_hello_goes_out_until_welcome() {
    let mut c = Check::new();
    c.s.submit(spec("inc", 1, &[]));
    assert!(c.sent().is_empty(), "nothing is sent before a connection");
    c.s.handle_connected(0);
    c.s.submit(spec("inc", 2, &[]));
    c.s.info(InfoRequest::HasWhat);
    let sent = c.sent();
    assert!(matches!(&sent[..], [ClientMsg::Hello { token: Some(t), .. }] if t == "tok"), "{sent:?}");
    c.recv(ToClient::Welcome { scheduler: "s".into() });
    assert_eq!(c.outputs(), vec![Output::Welcome { scheduler: "s".into() }]);
    let sent = c.sent();
    assert_eq!(submitted_keys(&sent), ["inc-1", "inc-2"]);
    assert!(sent.iter().any(|m| matches!(m, ClientMsg::Info { what: InfoRequest::HasWhat, .. })));
}

#[test]
fn release_is_sent_when_the_last_reference_goes() {
    let mut c = Check::ready();
    let k = spec("inc", 1, &[]).key;
    c.s.submit(spec("inc", 1, &[]));
    assert!(c.s.add_ref(&k));
    c.sent();
    c.s.release_ref(&k, c.now_ms);
    assert!(released_keys(&c.sent()).is_empty());
    assert_eq!(c.s.refs(&k), 1);
    c.s.release_ref(&k, c.now_ms);
    assert_eq!(released_keys(&c.sent()), ["inc-1"]);
    assert_eq!(c.outputs(), vec![Output::Forgotten { key: k.clone() }]);
    assert_eq!(c.s.n_live(), 0);
}

#[test]
fn identical_pure_submits_share_one_key_and_one_message() {
    let mut c = Check::ready();
    assert!(c.s.submit(spec("inc", 1, &[])));
    assert!(!c.s.submit(spec("inc", 1, &[])));
    assert_eq!(submitted_keys(&c.sent()), ["inc-1"]);
    assert_eq!(c.s.refs(&Key::from("inc-1")), 2);
}

#[test]
fn submits_are_batched_into_one_message_within_bounds() {
    let mut c = Check::ready();
    for n in 0..BATCH_ITEMS_MAX + 5 {
        let key = Key(format!("inc-{n}"));
        c.s.submit(TaskSpec::new(key, "inc", vec![0x80], vec![]));
    }
    let batches = c.batches();
    assert_eq!(batches.len(), 2);
    assert!(matches!(&batches[0][..], [ClientMsg::Submit { tasks }] if tasks.len() == BATCH_ITEMS_MAX));
    assert!(matches!(&batches[1][..], [ClientMsg::Submit { tasks }] if tasks.len() == 5));
}

#[test]
fn unacked_submits_are_resent_after_a_reconnect_and_acked_finished_ones_are_not() {
    let mut c = Check::ready();
    let (a, b, d) = (spec("inc", 1, &[]), spec("inc", 2, &[]), spec("inc", 3, &[]));
    c.s.submit(a.clone());
    c.s.submit(b.clone());
    c.s.submit(d.clone());
    c.sent();
    c.recv(ToClient::Acked { keys: vec![a.key.clone(), b.key.clone()] });
    c.recv(finished(&a.key, &[0x02]));
    // a: acked and finished, b: acked but pending, d: unacked.
    let resent = c.reconnect();
    assert_eq!(submitted_keys(&resent), ["inc-3", "inc-2"], "unacked first, then pending re-submits");
    assert_eq!(c.s.status(&a.key).map(KeyStatus::future_status), Some(FutureStatus::Finished));
}

#[test]
fn resends_keep_submission_order_so_inputs_come_first() {
    let mut c = Check::ready();
    let z = spec("zzz", 1, &[]);
    let a = spec("aaa", 2, &[&z.key]);
    c.s.submit(z.clone());
    c.s.submit(a.clone());
    assert_eq!(submitted_keys(&c.reconnect()), ["zzz-1", "aaa-2"]);
}

#[test]
fn an_unacked_dependent_holds_its_input_until_acked() {
    let mut c = Check::ready();
    let x = spec("inc", 1, &[]);
    let y = spec("add", 2, &[&x.key]);
    c.s.submit(x.clone());
    c.s.submit(y.clone());
    c.sent();
    c.s.release_ref(&x.key, c.now_ms);
    assert!(released_keys(&c.sent()).is_empty(), "y still needs x resent if the scheduler lost both");
    assert_eq!(submitted_keys(&c.reconnect()), ["inc-1", "add-2"]);
    c.recv(ToClient::Acked { keys: vec![x.key.clone(), y.key.clone()] });
    assert_eq!(released_keys(&c.sent()), ["inc-1"], "once y is durable the scheduler keeps x for it");
    assert_eq!(c.s.refs(&x.key), 0);
}

#[test]
fn fire_and_forget_keeps_an_unacked_submit_after_the_last_handle_goes() {
    let mut c = Check::ready();
    let a = spec("inc", 1, &[]);
    c.s.submit(a.clone());
    c.s.fire_and_forget(std::slice::from_ref(&a.key), c.now_ms);
    c.s.release_ref(&a.key, c.now_ms);
    let sent = c.sent();
    assert!(sent.iter().any(|m| matches!(m, ClientMsg::FireAndForget { .. })));
    assert!(released_keys(&sent).is_empty());
    let resent = c.reconnect();
    assert_eq!(submitted_keys(&resent), ["inc-1"]);
    let fnf = resent.iter().position(|m| matches!(m, ClientMsg::FireAndForget { .. }));
    assert!(fnf.is_some_and(|i| i > 0), "fire-and-forget follows the resent submit: {resent:?}");
    c.recv(ToClient::Acked { keys: vec![a.key.clone()] });
    assert_eq!(released_keys(&c.sent()), ["inc-1"]);
    assert_eq!(c.s.n_live(), 0);
}

#[test]
fn releases_are_resent_after_a_reconnect_until_settled() {
    let mut c = Check::ready();
    let a = spec("inc", 1, &[]);
    c.s.submit(a.clone());
    c.recv(ToClient::Acked { keys: vec![a.key.clone()] });
    c.s.release_ref(&a.key, c.now_ms);
    c.sent();
    assert_eq!(released_keys(&c.reconnect()), ["inc-1"], "the release may have died with the scheduler");
    // Heard from the scheduler long after the resend: settled.
    c.now_ms += Timing::default().settle_ms;
    c.recv(ToClient::Heartbeat);
    assert!(released_keys(&c.reconnect()).is_empty());
}

#[test]
fn a_release_is_not_resent_for_a_key_wanted_again() {
    let mut c = Check::ready();
    let a = spec("inc", 1, &[]);
    c.s.submit(a.clone());
    c.s.release_ref(&a.key, c.now_ms);
    c.s.submit(a.clone());
    let sent = c.sent();
    assert_eq!(submitted_keys(&sent), ["inc-1", "inc-1"]);
    assert_eq!(released_keys(&sent), ["inc-1"]);
    let resent = c.reconnect();
    assert!(released_keys(&resent).is_empty(), "{resent:?}");
    assert_eq!(submitted_keys(&resent), ["inc-1"]);
}

#[test]
fn info_replies_are_matched_by_request_id_and_resent_while_open() {
    let mut c = Check::ready();
    let r1 = c.s.info(InfoRequest::Ncores);
    let r2 = c.s.info(InfoRequest::HasWhat);
    assert_ne!(r1, r2);
    c.sent();
    let body = InfoReply::Ncores([(WorkerId::from("w1"), 2)].into());
    c.recv(ToClient::Reply { req: r1, body: body.clone() });
    assert_eq!(c.outputs(), vec![Output::Reply { req: r1, body: body.clone() }]);
    c.recv(ToClient::Reply { req: r1, body: body.clone() });
    c.recv(ToClient::Reply { req: RequestId(999), body });
    assert!(c.outputs().is_empty(), "duplicate and unknown replies are dropped");
    let resent = c.reconnect();
    let infos: Vec<_> = resent
        .iter()
        .filter_map(|m| match m {
            ClientMsg::Info { req, .. } => Some(*req),
            _ => None,
        })
        .collect();
    assert_eq!(infos, [r2]);
    c.s.forget_info(r2);
    assert!(!c.reconnect().iter().any(|m| matches!(m, ClientMsg::Info { .. })));
}

#[test]
fn updates_change_status_and_are_reported_once() {
    let mut c = Check::ready();
    let a = spec("inc", 1, &[]);
    c.s.submit(a.clone());
    c.recv(finished(&a.key, &[0x02]));
    c.recv(finished(&a.key, &[0x02]));
    let outs = c.outputs();
    assert_eq!(outs.len(), 1);
    assert!(matches!(&outs[0], Output::Status { status: KeyStatus::Finished { inline: Some(b), .. }, .. } if b[..] == [0x02]));
    c.recv(finished(&Key::from("other-1"), &[0x02]));
    assert!(c.outputs().is_empty(), "updates for keys not live are ignored");
}

#[test]
fn cancel_marks_at_once_and_stays_cancelled() {
    let mut c = Check::ready();
    let a = spec("inc", 1, &[]);
    c.s.submit(a.clone());
    c.sent();
    c.s.cancel(std::slice::from_ref(&a.key), c.now_ms);
    assert_eq!(c.s.status(&a.key), Some(&KeyStatus::Cancelled));
    assert!(matches!(&c.sent()[..], [ClientMsg::Cancel { force: false, .. }]));
    c.recv(finished(&a.key, &[0x02]));
    assert_eq!(c.s.status(&a.key), Some(&KeyStatus::Cancelled));
    // Unacked, so its submit is resent, and the cancel after it.
    let resent = c.reconnect();
    assert_eq!(submitted_keys(&resent), ["inc-1"]);
    assert!(matches!(resent.last(), Some(ClientMsg::Cancel { .. })), "{resent:?}");
    c.recv(ToClient::Acked { keys: vec![a.key.clone()] });
    assert!(submitted_keys(&c.reconnect()).is_empty(), "an acked cancelled key is not re-submitted");
}

#[test]
fn retry_resets_only_erred_keys() {
    let mut c = Check::ready();
    let (a, b) = (spec("fail", 1, &[]), spec("inc", 2, &[]));
    c.s.submit(a.clone());
    c.s.submit(b.clone());
    c.recv(erred(&a.key));
    c.sent();
    c.outputs();
    c.s.retry(&[a.key.clone(), b.key.clone()], c.now_ms);
    assert_eq!(c.s.status(&a.key), Some(&KeyStatus::Pending));
    assert!(matches!(&c.sent()[..], [ClientMsg::Retry { keys }] if keys == std::slice::from_ref(&a.key)));
    assert_eq!(c.outputs(), vec![Output::Status { key: a.key.clone(), status: KeyStatus::Pending }]);
}

#[test]
fn silence_loses_the_connection_and_idleness_sends_heartbeats() {
    let mut c = Check::ready();
    let t = Timing::default();
    c.advance(t.heartbeat_ms);
    assert_eq!(c.sent(), vec![ClientMsg::Heartbeat]);
    c.recv(ToClient::Heartbeat);
    assert_eq!(c.s.poll_timeout(), Some(c.now_ms + t.heartbeat_ms));
    c.advance(t.silence_ms - 1);
    assert!(c.outputs().is_empty());
    c.advance(1);
    assert_eq!(c.outputs(), vec![Output::ConnectionLost]);
    assert!(!c.s.is_ready());
    assert_eq!(c.s.poll_timeout(), None);
    assert!(c.sent().is_empty());
}

#[test]
fn a_missing_welcome_also_loses_the_connection() {
    let mut c = Check::new();
    c.s.handle_connected(0);
    c.sent();
    c.advance(Timing::default().silence_ms);
    assert_eq!(c.outputs(), vec![Output::ConnectionLost]);
}

#[test]
fn refused_closes_the_session() {
    let mut c = Check::new();
    c.s.handle_connected(0);
    c.sent();
    c.recv(ToClient::Refused { reason: "invalid auth token".into() });
    assert_eq!(c.outputs(), vec![Output::Refused { reason: "invalid auth token".into() }]);
    assert!(c.s.is_closed());
    assert!(!c.s.submit(spec("inc", 1, &[])));
    assert!(c.sent().is_empty());
}

#[test]
fn scattered_data_is_finished_at_once_and_resent_until_acked() {
    let mut c = Check::ready();
    let w = WorkerId::from("w1");
    let item = ScatteredItem { key: Key::from("scatter-1"), nbytes: 1, inline: Some(vec![0x07]) };
    c.s.scattered(&w, "tcp://w1", vec![item.clone()]);
    assert!(matches!(c.s.status(&item.key), Some(KeyStatus::Finished { holders, .. }) if holders[0].0 == w));
    assert!(matches!(&c.sent()[..], [ClientMsg::Scattered { items, .. }] if items == std::slice::from_ref(&item)));
    assert!(matches!(&c.reconnect()[..], [ClientMsg::Scattered { .. }]));
    c.recv(ToClient::Acked { keys: vec![item.key.clone()] });
    assert_eq!(c.outputs(), vec![Output::Acked { key: item.key.clone() }]);
    assert!(c.s.is_acked(&item.key));
    assert!(c.reconnect().is_empty());
}

#[test]
fn goodbye_goes_out_last_and_closes() {
    let mut c = Check::ready();
    c.s.submit(spec("inc", 1, &[]));
    c.s.goodbye();
    let sent = c.sent();
    assert!(matches!(sent.last(), Some(ClientMsg::Goodbye)), "{sent:?}");
    assert!(c.s.is_closed());
    c.s.handle_disconnected();
    assert!(c.sent().is_empty());
}

fn primitive_reqs(msgs: &[ClientMsg]) -> Vec<(u64, reprise_proto::PrimitiveOp)> {
    msgs.iter()
        .filter_map(|m| match m {
            ClientMsg::Primitive { req, op } => Some((req.0, op.clone())),
            _ => None,
        })
        .collect()
}

fn lock_acquire() -> reprise_proto::PrimitiveOp {
    reprise_proto::PrimitiveOp::LockAcquire { name: "L".into(), timeout_ms: None }
}

#[test]
fn unanswered_primitive_requests_are_resent_after_a_reconnect_and_answered_ones_are_not() {
    use reprise_proto::{PrimitiveOp, PrimitiveResult};
    let mut c = Check::ready();
    let a = c.s.primitive(lock_acquire());
    let b = c.s.primitive(PrimitiveOp::EventSet { name: "E".into() });
    assert_eq!(primitive_reqs(&c.sent()).len(), 2);
    c.recv(ToClient::PrimitiveReply { req: b, result: PrimitiveResult::Done });
    assert_eq!(c.s.poll_primitive_reply(), Some((b, PrimitiveResult::Done)));
    let resent = primitive_reqs(&c.reconnect());
    assert_eq!(resent, vec![(a.0, lock_acquire())], "only the blocked acquire goes again, with its id");
    c.recv(ToClient::PrimitiveReply { req: a, result: PrimitiveResult::Granted });
    c.recv(ToClient::PrimitiveReply { req: a, result: PrimitiveResult::Granted });
    assert_eq!(c.s.poll_primitive_reply(), Some((a, PrimitiveResult::Granted)));
    assert_eq!(c.s.poll_primitive_reply(), None, "a repeated answer is reported once");
    assert_eq!(c.s.n_pending_primitives(), 0);
}

#[test]
fn an_abandoned_request_is_withdrawn_not_resent_and_its_late_answer_ignored() {
    use reprise_proto::{PrimitiveOp, PrimitiveResult};
    let mut c = Check::ready();
    let a = c.s.primitive(lock_acquire());
    c.sent();
    let withdraw = c.s.abandon(a);
    assert_eq!(primitive_reqs(&c.sent()), vec![(withdraw.0, PrimitiveOp::Abandon { req: a })]);
    c.recv(ToClient::PrimitiveReply { req: a, result: PrimitiveResult::Granted });
    assert_eq!(c.s.poll_primitive_reply(), None);
    // The withdrawal itself is resent until answered.
    assert_eq!(primitive_reqs(&c.reconnect()), vec![(withdraw.0, PrimitiveOp::Abandon { req: a })]);
}

#[test]
fn futures_handed_out_in_an_answer_are_adopted_with_one_reference_each() {
    use reprise_proto::{PrimitiveOp, PrimitiveResult, ReplyValue};
    let mut c = Check::ready();
    let k = Key::from("inc-7");
    let req = c.s.primitive(PrimitiveOp::QueueGetBatch { name: "Q".into(), n: 2 });
    c.sent();
    let values = vec![
        ReplyValue::Future { key: k.clone(), state: None },
        ReplyValue::Future { key: k.clone(), state: None },
    ];
    c.recv(ToClient::PrimitiveReply { req, result: PrimitiveResult::Values(values) });
    assert_eq!(c.s.refs(&k), 2);
    assert_eq!(c.s.status(&k), Some(&KeyStatus::Pending));
    c.recv(finished(&k, &[0x08]));
    assert!(matches!(c.s.status(&k), Some(KeyStatus::Finished { .. })), "updates reach adopted keys");
    c.s.release_ref(&k, c.now_ms);
    c.s.release_ref(&k, c.now_ms);
    assert_eq!(released_keys(&c.sent()), ["inc-7"]);
}

#[test]
fn a_closed_session_sends_no_primitive_request() {
    let mut c = Check::ready();
    c.s.goodbye();
    c.sent();
    c.s.primitive(lock_acquire());
    assert!(c.sent().is_empty());
    assert_eq!(c.s.n_pending_primitives(), 0);
}

fn hello_first() -> ToClient {
    ToClient::Error { message: reprise_proto::HELLO_FIRST.to_owned() }
}

#[test]
fn a_session_the_scheduler_removed_says_hello_again_and_resends_everything() {
    use reprise_proto::{PrimitiveOp, PrimitiveResult};
    let mut c = Check::ready();
    let (a, b) = (spec("inc", 1, &[]), spec("inc", 2, &[]));
    c.s.submit(a.clone());
    c.s.submit(b.clone());
    c.sent();
    c.recv(ToClient::Acked { keys: vec![a.key.clone(), b.key.clone()] });
    c.recv(finished(&a.key, &[0x02]));
    let wait = c.s.primitive(PrimitiveOp::EventWait { name: "E".into(), timeout_ms: None });
    c.sent();
    // The scheduler removed us while the connection stayed up: whatever we
    // send is refused until we say Hello again, on the same connection.
    c.outputs();
    c.recv(hello_first());
    assert!(c.outputs().is_empty(), "the refusal is handled, not reported as an error");
    assert!(!c.s.is_ready());
    let sent = c.sent();
    assert!(matches!(&sent[..], [ClientMsg::Hello { client, .. }] if client.as_str() == "me-1"), "{sent:?}");
    // Refusals of what was in flight before the Hello change nothing.
    c.recv(hello_first());
    assert!(c.sent().is_empty(), "one Hello only");
    c.recv(ToClient::Welcome { scheduler: "s".into() });
    let resent = c.sent();
    assert_eq!(submitted_keys(&resent), ["inc-1", "inc-2"], "every live task is wanted again, finished ones too");
    let prims = primitive_reqs(&resent);
    assert!(matches!(&prims[..], [(r, PrimitiveOp::EventWait { .. })] if *r == wait.0), "{prims:?}");
    c.recv(ToClient::PrimitiveReply { req: wait, result: PrimitiveResult::Bool(true) });
    assert_eq!(c.s.poll_primitive_reply(), Some((wait, PrimitiveResult::Bool(true))));
    // An ordinary reconnect later resends only what is pending again.
    c.recv(ToClient::Acked { keys: vec![a.key.clone(), b.key.clone()] });
    assert_eq!(submitted_keys(&c.reconnect()), ["inc-2"]);
}

#[test]
fn other_scheduler_errors_are_reported_and_change_nothing() {
    let mut c = Check::ready();
    c.recv(ToClient::Error { message: "malformed".into() });
    assert_eq!(c.outputs(), vec![Output::SchedulerError { message: "malformed".into() }]);
    assert!(c.s.is_ready());
    assert!(c.sent().is_empty());
}

#[test]
fn an_answer_handing_back_a_key_whose_release_is_not_sent_yet_withdraws_the_release() {
    use reprise_proto::{PrimitiveOp, PrimitiveResult, ReplyValue};
    let mut c = Check::ready();
    let (a, b) = (spec("inc", 1, &[]), spec("inc", 2, &[]));
    c.s.submit(a.clone());
    let b = TaskSpec { deps: vec![a.key.clone()], ..b };
    c.s.submit(b.clone());
    let get = c.s.primitive(PrimitiveOp::QueueGet { name: "Q".into(), timeout_ms: None });
    c.sent();
    // The user drops `a`; b's hold keeps it until b is acked.
    c.s.release_ref(&a.key, c.now_ms);
    assert!(c.sent().is_empty());
    // One frame: the ack lets go of the hold (a's last reference), then the
    // answer hands `a` back, as the scheduler still wants it for us.
    c.recv(ToClient::Acked { keys: vec![b.key.clone()] });
    let values = vec![ReplyValue::Future { key: a.key.clone(), state: None }];
    c.recv(ToClient::PrimitiveReply { req: get, result: PrimitiveResult::Values(values) });
    assert_eq!(c.s.refs(&a.key), 1);
    assert!(released_keys(&c.sent()).is_empty(), "no Release may follow the answer that took the key back");
}

#[test]
fn an_answer_withdraws_a_resend_of_its_request_not_sent_yet() {
    use reprise_proto::PrimitiveResult;
    let mut c = Check::ready();
    let a = c.s.primitive(lock_acquire());
    c.sent();
    c.s.handle_disconnected();
    c.s.handle_connected(c.now_ms);
    c.sent();
    // One frame: the Welcome (which queues the resend), then the answer to
    // the first send, which the scheduler had in line all along.
    c.recv(ToClient::Welcome { scheduler: "s".into() });
    c.recv(ToClient::PrimitiveReply { req: a, result: PrimitiveResult::Timeout });
    assert!(primitive_reqs(&c.sent()).is_empty(), "no resend of an answered request");
    assert_eq!(c.s.poll_primitive_reply(), Some((a, PrimitiveResult::Timeout)));
}
