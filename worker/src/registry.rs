//! The named functions a worker can run, and how a call is made: decode the
//! arguments into the function's types, run it with panics caught, encode
//! what it returns. Actor types live here too, under the function name
//! `actor:<name>` (see [`crate::Actor`]).
use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};

use reprise_proto::{decode, encode, Key, TaskError, TaskErrorKind, ACTOR_FUNC_PREFIX};
use serde::de::DeserializeOwned;

use crate::actor::{ActorBox, ActorType};
use crate::args::prepare_args;
use crate::context::TaskContext;
use crate::core::Job;
use crate::panic_capture::{panic_message, take_traceback, TaskScope};
use crate::task_return::{ContextReturn, TaskReturn};

/// Why one call failed, before it is pinned to a task key.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) kind: TaskErrorKind,
    pub(crate) message: String,
    pub(crate) traceback: Option<String>,
}

impl Failure {
    pub(crate) fn new(kind: TaskErrorKind, message: impl Into<String>) -> Self {
        Failure { kind, message: message.into(), traceback: None }
    }

    pub(crate) fn into_task_error(self, key: &Key) -> TaskError {
        TaskError { kind: self.kind, message: self.message, traceback: self.traceback, key: key.clone() }
    }
}

type CallFn = dyn Fn(&TaskContext, &[u8]) -> Result<Vec<u8>, Failure> + Send + Sync;

/// A task function with its types erased, as [`IntoTask`] and
/// [`IntoContextTask`] build it.
pub struct TaskFn {
    arity: usize,
    call: Box<CallFn>,
}

impl TaskFn {
    fn new(
        arity: usize,
        call: impl Fn(&TaskContext, &[u8]) -> Result<Vec<u8>, Failure> + Send + Sync + 'static,
    ) -> Self {
        TaskFn { arity, call: Box::new(call) }
    }
}

impl std::fmt::Debug for TaskFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskFn").field("arity", &self.arity).finish_non_exhaustive()
    }
}

/// Functions and closures that can be registered as tasks: `Fn(A1, …, An) -> R`
/// for `n` in `0..=8`, every `Ai: DeserializeOwned` and `R:`
/// [`TaskReturn`](crate::TaskReturn). `Args` is the argument tuple; it is
/// inferred, so `.task("inc", inc)` and `.task("inc", |x: i64| x + 1)` both work.
pub trait IntoTask<Args>: Send + Sync + 'static {
    /// Erase the function's types.
    fn into_task(self) -> TaskFn;
}

impl<F, R> IntoTask<()> for F
where
    F: Fn() -> R + Send + Sync + 'static,
    R: TaskReturn,
{
    fn into_task(self) -> TaskFn {
        TaskFn::new(0, move |_ctx: &TaskContext, _args: &[u8]| invoke(&self))
    }
}

macro_rules! impl_into_task {
    ($n:literal; $($a:ident $v:ident),+) => {
        impl<F, R, $($a),+> IntoTask<($($a,)+)> for F
        where
            F: Fn($($a),+) -> R + Send + Sync + 'static,
            R: TaskReturn,
            $($a: DeserializeOwned + 'static,)+
        {
            fn into_task(self) -> TaskFn {
                TaskFn::new($n, move |_ctx: &TaskContext, args: &[u8]| {
                    let ($($v,)+) = decode_tuple::<($($a,)+)>(args)?;
                    invoke(|| (self)($($v),+))
                })
            }
        }
    };
}

impl_into_task!(1; A1 a1);
impl_into_task!(2; A1 a1, A2 a2);
impl_into_task!(3; A1 a1, A2 a2, A3 a3);
impl_into_task!(4; A1 a1, A2 a2, A3 a3, A4 a4);
impl_into_task!(5; A1 a1, A2 a2, A3 a3, A4 a4, A5 a5);
impl_into_task!(6; A1 a1, A2 a2, A3 a3, A4 a4, A5 a5, A6 a6);
impl_into_task!(7; A1 a1, A2 a2, A3 a3, A4 a4, A5 a5, A6 a6, A7 a7);
impl_into_task!(8; A1 a1, A2 a2, A3 a3, A4 a4, A5 a5, A6 a6, A7 a7, A8 a8);

/// Functions and closures that take a [`TaskContext`] before their
/// arguments: `Fn(&TaskContext, A1, …, An) -> R` for `n` in `0..=8`, with
/// the same rules as [`IntoTask`] except that `R` is a
/// [`ContextReturn`](crate::ContextReturn) (a value, or
/// `reprise_client::Result<T>`), so that a closure using `?` on the
/// context's calls needs no written-out return type. Registered with
/// [`WorkerBuilder::task_with_context`](crate::WorkerBuilder::task_with_context).
pub trait IntoContextTask<Args>: Send + Sync + 'static {
    /// Erase the function's types.
    fn into_context_task(self) -> TaskFn;
}

impl<F, R> IntoContextTask<()> for F
where
    F: Fn(&TaskContext) -> R + Send + Sync + 'static,
    R: ContextReturn,
{
    fn into_context_task(self) -> TaskFn {
        TaskFn::new(0, move |ctx: &TaskContext, _args: &[u8]| invoke(|| (self)(ctx)))
    }
}

macro_rules! impl_into_context_task {
    ($n:literal; $($a:ident $v:ident),+) => {
        impl<F, R, $($a),+> IntoContextTask<($($a,)+)> for F
        where
            F: Fn(&TaskContext, $($a),+) -> R + Send + Sync + 'static,
            R: ContextReturn,
            $($a: DeserializeOwned + 'static,)+
        {
            fn into_context_task(self) -> TaskFn {
                TaskFn::new($n, move |ctx: &TaskContext, args: &[u8]| {
                    let ($($v,)+) = decode_tuple::<($($a,)+)>(args)?;
                    invoke(|| (self)(ctx, $($v),+))
                })
            }
        }
    };
}

impl_into_context_task!(1; A1 a1);
impl_into_context_task!(2; A1 a1, A2 a2);
impl_into_context_task!(3; A1 a1, A2 a2, A3 a3);
impl_into_context_task!(4; A1 a1, A2 a2, A3 a3, A4 a4);
impl_into_context_task!(5; A1 a1, A2 a2, A3 a3, A4 a4, A5 a5);
impl_into_context_task!(6; A1 a1, A2 a2, A3 a3, A4 a4, A5 a5, A6 a6);
impl_into_context_task!(7; A1 a1, A2 a2, A3 a3, A4 a4, A5 a5, A6 a6, A7 a7);
impl_into_context_task!(8; A1 a1, A2 a2, A3 a3, A4 a4, A5 a5, A6 a6, A7 a7, A8 a8);

pub(crate) fn decode_tuple<T: DeserializeOwned>(args: &[u8]) -> Result<T, Failure> {
    decode(args).map_err(|e| {
        Failure::new(
            TaskErrorKind::Codec,
            format!("cannot decode the arguments as {}: {e}", std::any::type_name::<T>()),
        )
    })
}

/// Run `f` with panics caught, turn what it returns into the stored bytes.
/// Converting and encoding the result run inside `catch_unwind` too, since a
/// user's `Display` or `Serialize` may panic as well.
pub(crate) fn invoke<R: TaskReturn>(f: impl FnOnce() -> R) -> Result<Vec<u8>, Failure> {
    let scope = TaskScope::enter();
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| f().into_task_result().map(|value| encode(&value))));
    drop(scope);
    match outcome {
        Ok(Ok(Ok(bytes))) => Ok(bytes),
        Ok(Ok(Err(e))) => Err(Failure::new(TaskErrorKind::Codec, format!("cannot encode the result: {e}"))),
        Ok(Err(message)) => Err(Failure::new(TaskErrorKind::Raised, message)),
        Err(payload) => Err(Failure {
            kind: TaskErrorKind::Panicked,
            message: panic_message(payload.as_ref()),
            traceback: take_traceback(),
        }),
    }
}

/// The worker's functions and actor types by name.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    fns: BTreeMap<String, TaskFn>,
    actors: BTreeMap<String, ActorType>,
}

impl Registry {
    /// Register `f` as `name`; a later registration of a name replaces the earlier one.
    pub(crate) fn insert(&mut self, name: String, f: TaskFn) {
        self.fns.insert(name, f);
    }

    /// Register an actor type as `name` (created by the task `actor:<name>`).
    pub(crate) fn insert_actor(&mut self, name: String, actor: ActorType) {
        self.actors.insert(name, actor);
    }

    /// The registered names, sorted: functions, and `actor:<name>` for each actor type.
    pub(crate) fn names(&self) -> Vec<String> {
        let actors = self.actors.keys().map(|a| format!("{ACTOR_FUNC_PREFIX}{a}"));
        let mut names: Vec<String> = self.fns.keys().cloned().chain(actors).collect();
        names.sort();
        names.dedup();
        names
    }

    /// The actor type a task function names (`actor:<name>`), if it is one.
    pub(crate) fn actor_of(&self, func: &str) -> Option<&ActorType> {
        self.actors.get(func.strip_prefix(ACTOR_FUNC_PREFIX)?)
    }

    /// Run `func` for task `key`: resolve the inputs into the arguments, call,
    /// and return the CBOR-encoded result or the task's error.
    pub(crate) fn call(
        &self,
        ctx: &TaskContext,
        key: &Key,
        func: &str,
        args: &[u8],
        inputs: &[(Key, bytes::Bytes)],
    ) -> Result<Vec<u8>, TaskError> {
        let Some(f) = self.fns.get(func) else {
            let message = format!("no function named `{func}` is registered on this worker");
            return Err(TaskError::new(TaskErrorKind::UnknownFunction, key.clone(), message));
        };
        let args = prepare_args(func, f.arity, args, inputs).map_err(|e| e.into_task_error(key))?;
        (f.call)(ctx, &args).map_err(|e| {
            let mut e = e.into_task_error(key);
            if e.kind == TaskErrorKind::Codec {
                e.message = format!("`{func}`: {}", e.message);
            }
            e
        })
    }

    /// Run the job that creates an instance of `actor`: the instance, and
    /// the small marker stored as the task's result.
    pub(crate) fn create_actor(
        &self,
        ctx: &TaskContext,
        actor: &ActorType,
        job: &Job,
    ) -> Result<(Vec<u8>, ActorBox), TaskError> {
        actor.create(ctx, &job.func, &job.args, &job.inputs).map_err(|e| e.into_task_error(&job.key))
    }
}

#[cfg(test)]
mod tests {
    use std::fmt;

    use ciborium::value::Value;
    use serde::{Deserialize, Serialize};

    use super::*;

    fn registry(entries: Vec<(&str, TaskFn)>) -> Registry {
        let mut r = Registry::default();
        for (name, f) in entries {
            r.insert(name.to_owned(), f);
        }
        r
    }

    fn call<T: DeserializeOwned>(r: &Registry, func: &str, args: impl Serialize) -> Result<T, TaskError> {
        let ctx = TaskContext::detached(Key::from("k-1"));
        let bytes = r.call(&ctx, &Key::from("k-1"), func, &encode(&args).unwrap(), &[])?;
        Ok(decode(&bytes).unwrap())
    }

    fn answer() -> i64 {
        42
    }

    fn inc(x: i64) -> i64 {
        x + 1
    }

    #[derive(Debug)]
    struct DivByZero;
    impl fmt::Display for DivByZero {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("division by zero")
        }
    }

    fn div(x: f64, y: f64) -> Result<f64, DivByZero> {
        if y == 0.0 {
            Err(DivByZero)
        } else {
            Ok(x / y)
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn eight(a: u8, b: u16, c: u32, d: u64, e: i8, f: String, g: Vec<i64>, h: Option<bool>) -> String {
        format!("{a}{b}{c}{d}{e}{f}{}{}", g.len(), h.unwrap_or(false))
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Point {
        x: i64,
        y: i64,
    }
    crate::impl_task_return!(Point);

    #[test]
    fn functions_of_zero_one_two_and_eight_arguments_run() {
        let r = registry(vec![
            ("answer", answer.into_task()),
            ("inc", inc.into_task()),
            ("add", (|x: i64, y: i64| x + y).into_task()),
            ("eight", eight.into_task()),
        ]);
        assert_eq!(call::<i64>(&r, "answer", ()).unwrap(), 42);
        assert_eq!(call::<i64>(&r, "answer", Vec::<i64>::new()).unwrap(), 42);
        assert_eq!(call::<i64>(&r, "inc", (1,)).unwrap(), 2);
        assert_eq!(call::<i64>(&r, "add", (2, 3)).unwrap(), 5);
        let got: String = call(&r, "eight", (1, 2, 3, 4, -5, "six", vec![7, 7], Some(true))).unwrap();
        assert_eq!(got, "1234-5six2true");
    }

    #[test]
    fn result_returning_function_stores_ok_and_raises_err() {
        let r = registry(vec![("div", div.into_task())]);
        assert_eq!(call::<f64>(&r, "div", (1.0, 4.0)).unwrap(), 0.25);
        let err = call::<f64>(&r, "div", (1.0, 0.0)).unwrap_err();
        assert_eq!(err.kind, TaskErrorKind::Raised);
        assert_eq!(err.message, "division by zero");
        assert_eq!(err.key.as_str(), "k-1");
    }

    #[test]
    fn user_type_registered_with_impl_task_return_round_trips() {
        let r = registry(vec![("point", (|x: i64| Point { x, y: -x }).into_task())]);
        assert_eq!(call::<Point>(&r, "point", (3,)).unwrap(), Point { x: 3, y: -3 });
    }

    #[test]
    fn panic_becomes_panicked_with_message_and_location() {
        let r = registry(vec![("boom", (|x: i64| -> i64 { panic!("boom at {x}") }).into_task())]);
        let err = call::<i64>(&r, "boom", (7,)).unwrap_err();
        assert_eq!(err.kind, TaskErrorKind::Panicked);
        assert_eq!(err.message, "boom at 7");
        let traceback = err.traceback.unwrap_or_default();
        assert!(traceback.contains("registry.rs"), "{traceback}");
    }

    #[test]
    fn arguments_of_the_wrong_type_are_a_codec_error() {
        let r = registry(vec![("inc", inc.into_task())]);
        let err = call::<i64>(&r, "inc", ("not a number",)).unwrap_err();
        assert_eq!(err.kind, TaskErrorKind::Codec);
        assert!(err.message.contains("`inc`") && err.message.contains("i64"), "{}", err.message);
        let err = call::<i64>(&r, "inc", (1, 2)).unwrap_err();
        assert_eq!(err.kind, TaskErrorKind::Codec);
    }

    #[test]
    fn context_closure_using_question_mark_registers_without_a_return_type() {
        // The error type of `?` and `Ok(..)` is inferred as reprise_client::Error.
        let r = registry(vec![
            (
                "plus_one",
                (|ctx: &TaskContext, n: u64| {
                    let x = ctx.block_on(async { reprise_client::Result::Ok(n) })?;
                    Ok(x + 1)
                })
                .into_context_task(),
            ),
            (
                "needs_client",
                (|ctx: &TaskContext, n: u64| {
                    let _client = ctx.client()?;
                    Ok(n)
                })
                .into_context_task(),
            ),
            ("plain", (|ctx: &TaskContext| ctx.key().to_owned()).into_context_task()),
        ]);
        assert_eq!(call::<u64>(&r, "plus_one", (41,)).unwrap(), 42);
        let err = call::<u64>(&r, "needs_client", (1,)).unwrap_err();
        assert_eq!(err.kind, TaskErrorKind::Raised);
        assert!(err.message.contains("outside a running worker"), "{}", err.message);
        assert_eq!(call::<String>(&r, "plain", ()).unwrap(), "k-1");
    }

    #[test]
    fn unknown_function_is_reported_with_its_name() {
        let r = Registry::default();
        let err = call::<i64>(&r, "nope", (1,)).unwrap_err();
        assert_eq!(err.kind, TaskErrorKind::UnknownFunction);
        assert!(err.message.contains("`nope`"));
    }

    #[test]
    fn echo_of_any_value_returns_it_unchanged() {
        let r = registry(vec![("echo", (|v: Value| v).into_task())]);
        let v = Value::Map(vec![(Value::Text("a".into()), Value::Bytes(vec![1, 2]))]);
        assert_eq!(call::<Value>(&r, "echo", (v.clone(),)).unwrap(), v);
    }
}
