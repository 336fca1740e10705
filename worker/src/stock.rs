//! The stock functions every `reprise worker` and `LocalCluster` worker
//! registers, for demos, tests and benchmarks.
//!
//! | name | signature |
//! |---|---|
//! | `noop` | `() -> ()` |
//! | `inc` | `(i64) -> i64` |
//! | `add` | `(i64, i64) -> i64` |
//! | `sum` | `(Vec<i64>) -> i64` |
//! | `sleep` | `(f64 seconds) -> ()` |
//! | `slowinc` | `(i64, f64 seconds) -> i64` |
//! | `fail` | `(String) -> never`: errs with that message |
//! | `echo` | `(any) -> the same value` |
//! | `bytes` | `(u64 n) -> n zero bytes`, as a CBOR byte string |
//!
//! And one actor, [`Counter`], which callers register themselves
//! (`.actor::<Counter>("Counter")`).
//!
//! ```
//! let builder = reprise_worker::stock::register(reprise_worker::Worker::builder());
//! # drop(builder);
//! ```
use std::convert::Infallible;
use std::time::Duration;

use serde_bytes::ByteBuf;

use crate::{Actor, Methods, WorkerBuilder};

/// Register every stock function on `builder`.
pub fn register(builder: WorkerBuilder) -> WorkerBuilder {
    builder
        .task("noop", noop)
        .task("inc", inc)
        .task("add", add)
        .task("sum", sum)
        .task("sleep", sleep)
        .task("slowinc", slowinc)
        .task("fail", fail)
        .task("echo", echo)
        .task("bytes", bytes)
}

/// Does nothing.
pub fn noop() {}

/// `x + 1` (wrapping, so that no input panics).
pub fn inc(x: i64) -> i64 {
    x.wrapping_add(1)
}

/// `x + y` (wrapping).
pub fn add(x: i64, y: i64) -> i64 {
    x.wrapping_add(y)
}

/// The sum of `xs` (wrapping).
pub fn sum(xs: Vec<i64>) -> i64 {
    xs.into_iter().fold(0, i64::wrapping_add)
}

/// Block the task thread for `seconds` (negative or NaN means not at all).
pub fn sleep(seconds: f64) -> Result<(), String> {
    std::thread::sleep(duration(seconds)?);
    Ok(())
}

/// `x + 1`, after sleeping `seconds`.
pub fn slowinc(x: i64, seconds: f64) -> Result<i64, String> {
    sleep(seconds)?;
    Ok(inc(x))
}

/// Always errs with `message`.
pub fn fail(message: String) -> Result<(), String> {
    Err(message)
}

/// Returns its argument unchanged.
pub fn echo(value: ciborium::Value) -> Result<ciborium::Value, Infallible> {
    Ok(value)
}

/// `n` zero bytes, encoded as a CBOR byte string (not an array of integers).
pub fn bytes(n: u64) -> Result<ByteBuf, String> {
    let n = usize::try_from(n).map_err(|_| format!("{n} bytes do not fit in memory on this machine"))?;
    Ok(ByteBuf::from(vec![0u8; n]))
}

fn duration(seconds: f64) -> Result<Duration, String> {
    if seconds.is_nan() || seconds <= 0.0 {
        return Ok(Duration::ZERO);
    }
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("cannot sleep {seconds} s: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stock_functions_compute_what_their_names_say() {
        assert_eq!(inc(1), 2);
        assert_eq!(inc(i64::MAX), i64::MIN);
        assert_eq!(add(2, 3), 5);
        assert_eq!(sum(vec![1, 2, 3]), 6);
        assert_eq!(slowinc(1, 0.0), Ok(2));
        assert_eq!(fail("no".into()), Err("no".into()));
        assert_eq!(bytes(3).map(|b| b.into_vec()), Ok(vec![0, 0, 0]));
        assert!(sleep(f64::INFINITY).is_err());
        assert_eq!(sleep(-1.0), Ok(()));
    }

    #[test]
    fn bytes_result_encodes_as_a_cbor_byte_string() {
        let encoded = reprise_proto::encode(&bytes(2).unwrap()).unwrap();
        assert_eq!(encoded, vec![0x42, 0, 0]);
    }
}

/// Dask's counter actor: `increment()` adds one and returns the count,
/// `value()` returns it.
#[derive(Debug, Default)]
pub struct Counter {
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
            .method("value", |c: &mut Counter| c.n);
    }
}
