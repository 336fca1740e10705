//! Actors: stateful objects that live on one worker. A client creates one
//! with `client.submit_actor("Counter", args)` and calls its methods with
//! `handle.call("increment", args)`, straight to the worker's peer socket.
//!
//! An actor type implements [`Actor`]: how to make an instance from its
//! creation arguments, and which methods clients may call, registered by
//! name in [`Methods`] with the same argument rules as task functions.
//!
//! Creating an actor is an ordinary task, of the function `actor:<name>`,
//! which the worker advertises for each actor type it registered. Its
//! result is a small marker naming the worker; the instance itself stays on
//! the worker for as long as the task's data does, and runs its calls one
//! at a time, in arrival order, on a thread of its own (see
//! `actor_host`). Actors are not resilient, as in Dask: if the worker
//! dies, the actor is gone, and calls fail; it is never recreated elsewhere.
use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;

use bytes::Bytes;
use ciborium::value::Value;
use reprise_proto::{decode, encode, ActorRef, Key, TaskErrorKind};
use serde::de::DeserializeOwned;

use crate::args::{prepare_args, substitute_refs};
use crate::context::TaskContext;
use crate::panic_capture::{panic_message, take_traceback, TaskScope};
use crate::registry::{decode_tuple, invoke, Failure};
use crate::task_return::TaskReturn;

/// A type whose instances live on a worker as actors.
///
/// ```
/// use reprise_worker::{Actor, Methods, Worker};
///
/// /// A counter: `increment` adds one and returns the new count.
/// #[derive(Default)]
/// struct Counter {
///     n: u64,
/// }
///
/// impl Actor for Counter {
///     type Args = ();
///     fn new((): ()) -> Result<Self, String> {
///         Ok(Counter::default())
///     }
///     fn methods(methods: &mut Methods<Self>) {
///         methods
///             .method("increment", |c: &mut Counter| {
///                 c.n += 1;
///                 c.n
///             })
///             .method("add", |c: &mut Counter, x: u64| {
///                 c.n += x;
///                 c.n
///             })
///             .method("value", |c: &mut Counter| c.n);
///     }
/// }
///
/// let builder = Worker::builder().actor::<Counter>("Counter");
/// # drop(builder);
/// ```
///
/// A client then does `let counter = client.submit_actor("Counter", ()).await?;`
/// and `let n: u64 = counter.call("increment", ()).await?;`.
pub trait Actor: Send + Sized + 'static {
    /// The creation arguments, passed like a task's: a tuple such as
    /// `(u64, String)`, or `()` for none. Futures among them are replaced by
    /// their values, as for tasks.
    type Args: DeserializeOwned;

    /// Make the instance on the worker. An `Err` fails the creating task.
    fn new(args: Self::Args) -> Result<Self, String>;

    /// Register the methods clients may call, by name.
    fn methods(methods: &mut Methods<Self>);
}

type MethodFn<S> = dyn Fn(&mut S, &[u8]) -> Result<Vec<u8>, Failure> + Send + Sync;

/// One method of an actor type with its argument types erased, as
/// [`IntoMethod`] builds it.
pub struct Method<S> {
    arity: usize,
    call: Box<MethodFn<S>>,
}

impl<S> Method<S> {
    fn new(arity: usize, call: impl Fn(&mut S, &[u8]) -> Result<Vec<u8>, Failure> + Send + Sync + 'static) -> Self {
        Method { arity, call: Box::new(call) }
    }
}

/// The methods of an actor type, by name; filled in by [`Actor::methods`].
pub struct Methods<S> {
    table: BTreeMap<String, Method<S>>,
}

impl<S> Default for Methods<S> {
    fn default() -> Self {
        Methods { table: BTreeMap::new() }
    }
}

impl<S> Methods<S> {
    /// Register `f` as the method `name`: a function or closure taking
    /// `&mut S` and then 0 to 8 arguments, each `DeserializeOwned`, and
    /// returning a [`TaskReturn`] (any common serializable type, or
    /// `Result<T, E: Display>`), as task functions do. A later registration
    /// of the same name replaces the earlier one.
    pub fn method<Args, F: IntoMethod<S, Args>>(&mut self, name: impl Into<String>, f: F) -> &mut Self {
        self.table.insert(name.into(), f.into_method());
        self
    }

    /// The method names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.table.keys().map(String::as_str).collect()
    }

    fn call(&self, state: &mut S, method: &str, args: &[u8]) -> Result<Vec<u8>, Failure> {
        let Some(m) = self.table.get(method) else {
            let message = format!("has no method `{method}` (it has: {})", self.names().join(", "));
            return Err(Failure::new(TaskErrorKind::UnknownFunction, message));
        };
        let args = prepare_args(method, m.arity, args, &[])?;
        (m.call)(state, &args)
    }
}

impl<S> std::fmt::Debug for Methods<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.table.keys()).finish()
    }
}

/// Functions and closures that can be actor methods: `Fn(&mut S, A1, …, An) -> R`
/// for `n` in `0..=8`, every `Ai: DeserializeOwned` and `R:`
/// [`TaskReturn`]. Annotate a closure's first parameter (`|c: &mut Counter| …`).
pub trait IntoMethod<S, Args>: Send + Sync + 'static {
    /// Erase the method's argument types.
    fn into_method(self) -> Method<S>;
}

impl<S, F, R> IntoMethod<S, ()> for F
where
    F: Fn(&mut S) -> R + Send + Sync + 'static,
    R: TaskReturn,
{
    fn into_method(self) -> Method<S> {
        Method::new(0, move |state: &mut S, _args: &[u8]| invoke(|| (self)(state)))
    }
}

macro_rules! impl_into_method {
    ($n:literal; $($a:ident $v:ident),+) => {
        impl<S, F, R, $($a),+> IntoMethod<S, ($($a,)+)> for F
        where
            F: Fn(&mut S, $($a),+) -> R + Send + Sync + 'static,
            R: TaskReturn,
            $($a: DeserializeOwned + 'static,)+
        {
            fn into_method(self) -> Method<S> {
                Method::new($n, move |state: &mut S, args: &[u8]| {
                    let ($($v,)+) = decode_tuple::<($($a,)+)>(args)?;
                    invoke(|| (self)(state, $($v),+))
                })
            }
        }
    };
}

impl_into_method!(1; A1 a1);
impl_into_method!(2; A1 a1, A2 a2);
impl_into_method!(3; A1 a1, A2 a2, A3 a3);
impl_into_method!(4; A1 a1, A2 a2, A3 a3, A4 a4);
impl_into_method!(5; A1 a1, A2 a2, A3 a3, A4 a4, A5 a5);
impl_into_method!(6; A1 a1, A2 a2, A3 a3, A4 a4, A5 a5, A6 a6);
impl_into_method!(7; A1 a1, A2 a2, A3 a3, A4 a4, A5 a5, A6 a6, A7 a7);
impl_into_method!(8; A1 a1, A2 a2, A3 a3, A4 a4, A5 a5, A6 a6, A7 a7, A8 a8);

/// A live actor instance with its type erased.
pub(crate) trait ActorObject: Send {
    /// Run `method` with its encoded argument tuple.
    fn call(&mut self, method: &str, args: &[u8]) -> Result<Vec<u8>, Failure>;
}

/// An instance, boxed.
pub(crate) type ActorBox = Box<dyn ActorObject>;

struct Instance<S> {
    state: S,
    methods: Arc<Methods<S>>,
}

impl<S: Send + 'static> ActorObject for Instance<S> {
    fn call(&mut self, method: &str, args: &[u8]) -> Result<Vec<u8>, Failure> {
        self.methods.call(&mut self.state, method, args)
    }
}

type CreateFn = dyn Fn(&[u8]) -> Result<ActorBox, Failure> + Send + Sync;

/// A registered actor type: its name and how to make an instance.
pub(crate) struct ActorType {
    name: String,
    create: Box<CreateFn>,
}

impl std::fmt::Debug for ActorType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActorType").field("name", &self.name).finish_non_exhaustive()
    }
}

impl ActorType {
    /// The actor type `A`, registered as `name`; its method table is built once.
    pub(crate) fn of<A: Actor>(name: &str) -> Self {
        let mut methods = Methods::<A>::default();
        A::methods(&mut methods);
        let methods = Arc::new(methods);
        let create = move |args: &[u8]| -> Result<ActorBox, Failure> {
            let args: A::Args = decode_creation_args::<A::Args>(args)?;
            let state = make(|| A::new(args))?;
            Ok(Box::new(Instance { state, methods: Arc::clone(&methods) }))
        };
        ActorType { name: name.to_owned(), create: Box::new(create) }
    }

    /// Make an instance for the task `func` with these arguments and inputs:
    /// the marker stored as the task's result, and the instance.
    pub(crate) fn create(
        &self,
        ctx: &TaskContext,
        func: &str,
        args: &[u8],
        inputs: &[(Key, Bytes)],
    ) -> Result<(Vec<u8>, ActorBox), Failure> {
        let args = substitute_refs(func, args, inputs)?;
        let instance = (self.create)(&args)?;
        let (worker, address) = match ctx.services() {
            Some(s) => (s.worker.clone(), s.address.clone()),
            None => (reprise_proto::WorkerId::from(""), String::new()),
        };
        let marker = ActorRef { actor: self.name.clone(), worker, address };
        let marker = encode(&marker)
            .map_err(|e| Failure::new(TaskErrorKind::Codec, format!("cannot encode the actor marker: {e}")))?;
        Ok((marker, instance))
    }
}

/// Decode the creation arguments; `()` also accepts the empty argument list.
fn decode_creation_args<T: DeserializeOwned>(args: &[u8]) -> Result<T, Failure> {
    match decode_tuple::<T>(args) {
        Ok(value) => Ok(value),
        Err(first) => match decode::<Value>(args) {
            // serde's `()` is CBOR null, while no arguments is an empty array.
            Ok(Value::Array(items)) if items.is_empty() => decode_tuple::<T>(&[0xf6]).map_err(|_| first),
            _ => Err(first),
        },
    }
}

/// Run a constructor with panics caught.
fn make<S>(f: impl FnOnce() -> Result<S, String>) -> Result<S, Failure> {
    let scope = TaskScope::enter();
    let outcome = panic::catch_unwind(AssertUnwindSafe(f));
    drop(scope);
    match outcome {
        Ok(Ok(state)) => Ok(state),
        Ok(Err(message)) => Err(Failure::new(TaskErrorKind::Raised, message)),
        Err(payload) => Err(Failure {
            kind: TaskErrorKind::Panicked,
            message: panic_message(payload.as_ref()),
            traceback: take_traceback(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Counter {
        n: u64,
    }

    impl Actor for Counter {
        type Args = ();
        fn new((): ()) -> Result<Self, String> {
            Ok(Counter::default())
        }
        fn methods(methods: &mut Methods<Self>) {
            methods
                .method("increment", |c: &mut Counter| {
                    c.n += 1;
                    c.n
                })
                .method("add", |c: &mut Counter, x: u64| {
                    c.n += x;
                    c.n
                })
                .method("fail", |_c: &mut Counter| -> Result<u64, String> { Err("no".into()) });
        }
    }

    struct Start(i64);

    impl Actor for Start {
        type Args = (i64,);
        fn new((x,): (i64,)) -> Result<Self, String> {
            if x < 0 {
                Err("negative start".into())
            } else {
                Ok(Start(x))
            }
        }
        fn methods(methods: &mut Methods<Self>) {
            methods.method("get", |s: &mut Start| s.0);
        }
    }

    fn create(ty: &ActorType, args: &impl serde::Serialize) -> Result<(ActorRef, ActorBox), Failure> {
        let ctx = TaskContext::detached(Key::from("actor:x-1"));
        let (marker, instance) = ty.create(&ctx, "actor:x", &encode(args).unwrap(), &[])?;
        Ok((decode(&marker).unwrap(), instance))
    }

    fn call<T: DeserializeOwned>(
        instance: &mut ActorBox,
        method: &str,
        args: impl serde::Serialize,
    ) -> Result<T, Failure> {
        let bytes = instance.call(method, &encode(&args).unwrap())?;
        Ok(decode(&bytes).unwrap())
    }

    #[test]
    fn methods_change_the_state_one_call_after_another() {
        let ty = ActorType::of::<Counter>("Counter");
        let (marker, mut counter) = create(&ty, &()).unwrap();
        assert_eq!(marker.actor, "Counter");
        assert_eq!(call::<u64>(&mut counter, "increment", ()).unwrap(), 1);
        assert_eq!(call::<u64>(&mut counter, "add", (10,)).unwrap(), 11);
        assert_eq!(call::<u64>(&mut counter, "increment", Vec::<u8>::new()).unwrap(), 12);
    }

    #[test]
    fn unknown_method_wrong_arguments_and_err_are_failures() {
        let ty = ActorType::of::<Counter>("Counter");
        let (_, mut counter) = create(&ty, &()).unwrap();
        let unknown = call::<u64>(&mut counter, "nope", ()).unwrap_err();
        assert_eq!(unknown.kind, TaskErrorKind::UnknownFunction);
        assert!(unknown.message.contains("`nope`") && unknown.message.contains("increment"), "{}", unknown.message);
        assert_eq!(call::<u64>(&mut counter, "add", ("x",)).unwrap_err().kind, TaskErrorKind::Codec);
        assert_eq!(call::<u64>(&mut counter, "fail", ()).unwrap_err().kind, TaskErrorKind::Raised);
    }

    #[test]
    fn creation_arguments_decode_and_a_refusing_constructor_fails() {
        let ty = ActorType::of::<Start>("Start");
        let (_, mut start) = create(&ty, &(5,)).unwrap();
        assert_eq!(call::<i64>(&mut start, "get", ()).unwrap(), 5);
        let refused = create(&ty, &(-1,)).err().unwrap();
        assert_eq!((refused.kind, refused.message.as_str()), (TaskErrorKind::Raised, "negative start"));
        assert_eq!(create(&ty, &("x",)).err().unwrap().kind, TaskErrorKind::Codec);
    }
}
