//! What a task function may return.
//!
//! Coherence forbids one blanket impl covering both "any `T: Serialize`" and
//! "`Result<T, E: Display>`" (a `Result` is itself `Serialize`), so
//! [`TaskReturn`] is implemented for `Result<T, E>` and for the common std
//! and serde types one by one; a user's own type takes one line with
//! [`impl_task_return!`](crate::impl_task_return).
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt::Display;

use serde::Serialize;

/// A value a task function may return: either a result to store
/// (`Self::Output`) or an error message that fails the task as `Raised`.
///
/// Implemented for `Result<T: Serialize, E: Display>` (an `Err` fails the
/// task with `e.to_string()`), and for integers, floats, `bool`, `char`,
/// `String`, `&'static str`, `()`, `Vec<T>`, `VecDeque<T>`, `Option<T>`,
/// `Box<T>`, arrays, tuples of up to 8, `BTreeMap`/`HashMap`,
/// `BTreeSet`/`HashSet`, [`serde_bytes::ByteBuf`] and [`ciborium::Value`].
///
/// For your own `Serialize` type, either return `Result<MyType, E>` or add one line:
///
/// ```
/// #[derive(serde::Serialize)]
/// struct Point { x: f64, y: f64 }
/// reprise_worker::impl_task_return!(Point);
///
/// fn origin() -> Point { Point { x: 0.0, y: 0.0 } }
/// let builder = reprise_worker::Worker::builder().task("origin", origin);
/// # drop(builder);
/// ```
///
/// A generic type of your own gets a hand-written impl of the same shape:
/// `impl<T: Serialize> TaskReturn for MyBox<T> { type Output = Self; fn into_task_result(self) -> Result<Self, String> { Ok(self) } }`,
/// plus `impl<T: Serialize> ContextReturn for MyBox<T> {}` to return it from a task with a context.
pub trait TaskReturn {
    /// The value stored (CBOR-encoded) as the task's result.
    type Output: Serialize;
    /// `Ok(value)` to store it, `Err(message)` to fail the task.
    fn into_task_result(self) -> Result<Self::Output, String>;
}

impl<T: Serialize, E: Display> TaskReturn for Result<T, E> {
    type Output = T;
    fn into_task_result(self) -> Result<T, String> {
        self.map_err(|e| e.to_string())
    }
}

/// What a function registered with
/// [`WorkerBuilder::task_with_context`](crate::WorkerBuilder::task_with_context)
/// may return: every [`TaskReturn`] value that is not a `Result`, and
/// [`reprise_client::Result<T>`] (`Result<T, reprise_client::Error>`).
///
/// Why only that `Result`: the calls a context task makes (`ctx.client()`,
/// `client.map`, `ctx.block_on(client.gather(..))`) fail with
/// `reprise_client::Error`, and a closure that uses `?` on them and ends
/// in `Ok(..)` names no error type of its own. With a single `Result`
/// impl here, Rust infers it, so such a closure registers without a
/// written-out return type (as API.md's `fanout` example does). A task
/// with an error type of its own maps it into a `reprise_client::Error`,
/// or is registered with [`WorkerBuilder::task`](crate::WorkerBuilder::task)
/// (which takes any `Result<T, E: Display>`) if it needs no context.
///
/// [`impl_task_return!`](crate::impl_task_return) implements this trait too.
pub trait ContextReturn: TaskReturn {}

impl<T: Serialize> ContextReturn for Result<T, reprise_client::Error> {}

/// Implement [`TaskReturn`] (and [`ContextReturn`]) for types that are
/// returned as they are (`Output = Self`):
/// `reprise_worker::impl_task_return!(MyType, OtherType);`.
#[macro_export]
macro_rules! impl_task_return {
    ($($t:ty),+ $(,)?) => {
        $(
            impl $crate::TaskReturn for $t {
                type Output = Self;
                fn into_task_result(self) -> ::std::result::Result<Self, ::std::string::String> {
                    ::std::result::Result::Ok(self)
                }
            }
            impl $crate::ContextReturn for $t {}
        )+
    };
}

impl_task_return!(
    (),
    bool,
    char,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    f32,
    f64,
    String,
    &'static str,
    serde_bytes::ByteBuf,
    ciborium::Value,
);

/// Generic containers of serializable values return as they are.
macro_rules! impl_generic {
    ($(impl<$($p:ident),+> for $t:ty;)+) => {
        $(
            impl<$($p: Serialize),+> TaskReturn for $t {
                type Output = Self;
                fn into_task_result(self) -> Result<Self, String> {
                    Ok(self)
                }
            }
            impl<$($p: Serialize),+> ContextReturn for $t {}
        )+
    };
}

impl_generic! {
    impl<T> for Vec<T>;
    impl<T> for VecDeque<T>;
    impl<T> for Option<T>;
    impl<T> for Box<T>;
    impl<T> for BTreeSet<T>;
    impl<K, V> for BTreeMap<K, V>;
    impl<A> for (A,);
    impl<A, B> for (A, B);
    impl<A, B, C> for (A, B, C);
    impl<A, B, C, D> for (A, B, C, D);
    impl<A, B, C, D, E> for (A, B, C, D, E);
    impl<A, B, C, D, E, F> for (A, B, C, D, E, F);
    impl<A, B, C, D, E, F, G> for (A, B, C, D, E, F, G);
    impl<A, B, C, D, E, F, G, H> for (A, B, C, D, E, F, G, H);
}

impl<T: Serialize, S> TaskReturn for HashSet<T, S> {
    type Output = Self;
    fn into_task_result(self) -> Result<Self, String> {
        Ok(self)
    }
}
impl<T: Serialize, S> ContextReturn for HashSet<T, S> {}

impl<K: Serialize, V: Serialize, S> TaskReturn for HashMap<K, V, S> {
    type Output = Self;
    fn into_task_result(self) -> Result<Self, String> {
        Ok(self)
    }
}
impl<K: Serialize, V: Serialize, S> ContextReturn for HashMap<K, V, S> {}

impl<T, const N: usize> TaskReturn for [T; N]
where
    [T; N]: Serialize,
{
    type Output = Self;
    fn into_task_result(self) -> Result<Self, String> {
        Ok(self)
    }
}
impl<T, const N: usize> ContextReturn for [T; N] where [T; N]: Serialize {}
