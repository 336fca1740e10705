//! The simulated task functions. What a task computes, how long it runs and
//! whether it fails all follow from its arguments (and, for "fail the first
//! n runs", from how often it ran), so a seed always computes the same
//! values and the model can predict every result.
use bytes::Bytes;
use ciborium::value::Value;
use reprise_proto::{future_ref_value, Key};

use crate::rng::{fnv1a, mix64, FNV_OFFSET};

/// The function every worker has.
pub const FUNC: &str = "sim";
/// A function only even-numbered workers have.
pub const FUNC_RARE: &str = "sim_rare";
/// A function no worker has: such tasks err with `UnknownFunction`.
pub const FUNC_MISSING: &str = "sim_missing";
/// The resource only worker 0 offers.
pub const GPU: &str = "GPU";

/// Bytes of a big value: over the small inline limit the scheduler may use.
const BIG_VALUE_BYTES: usize = 64;

/// How a task fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fail {
    Never,
    /// Its first `n` runs (over all attempts and workers) fail.
    First(u8),
    Always,
}

/// The decoded arguments of a simulated task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskArgs {
    /// Unique per task definition of the workload.
    pub id: u64,
    pub dur_ms: u64,
    pub fail: Fail,
    /// Whether the result is [`BIG_VALUE_BYTES`] long rather than 8.
    pub big: bool,
}

/// The CBOR argument tuple `[id, dur_ms, fail, fail_n, big, [refs…]]`, with
/// a future reference for each dependency, as a real client encodes it.
pub fn encode_args(args: &TaskArgs, deps: &[Key]) -> Vec<u8> {
    let (fail, fail_n) = match args.fail {
        Fail::Never => (0u8, 0u8),
        Fail::First(n) => (1, n),
        Fail::Always => (2, 0),
    };
    let refs = deps.iter().map(future_ref_value).collect();
    let value = Value::Array(vec![
        Value::Integer(args.id.into()),
        Value::Integer(args.dur_ms.into()),
        Value::Integer(fail.into()),
        Value::Integer(fail_n.into()),
        Value::Bool(args.big),
        Value::Array(refs),
    ]);
    // Encoding a Value into a Vec cannot fail; an empty tuple would only
    // make the task err with a codec error, which the model would notice.
    reprise_proto::encode(&value).unwrap_or_default()
}

/// Read back what [`encode_args`] wrote.
pub fn decode_args(bytes: &[u8]) -> Result<TaskArgs, String> {
    let value: Value = reprise_proto::decode(bytes).map_err(|e| e.to_string())?;
    let Value::Array(items) = value else { return Err("arguments are not an array".to_owned()) };
    let int = |i: usize| -> Result<u64, String> {
        match items.get(i) {
            Some(Value::Integer(n)) => u64::try_from(*n).map_err(|e| e.to_string()),
            other => Err(format!("argument {i} is not an integer: {other:?}")),
        }
    };
    let fail = match (int(2)?, int(3)?) {
        (0, _) => Fail::Never,
        (1, n) => Fail::First(u8::try_from(n).map_err(|e| e.to_string())?),
        _ => Fail::Always,
    };
    let big = matches!(items.get(4), Some(Value::Bool(true)));
    Ok(TaskArgs { id: int(0)?, dur_ms: int(1)?, fail, big })
}

/// A task's result: a hash of its id and of its inputs' values (in key
/// order), padded when big.
pub fn task_value(id: u64, big: bool, inputs: &[(Key, Bytes)]) -> Bytes {
    let mut h = mix64(id.wrapping_mul(0x2545_F491_4F6C_DD1D));
    for (key, data) in inputs {
        h = mix64(h ^ fnv1a(fnv1a(FNV_OFFSET, key.as_str().as_bytes()), data));
    }
    value_bytes(h, big)
}

/// The data a client scatters as its `n`-th scatter.
pub fn scatter_value(n: u64, big: bool) -> Bytes {
    value_bytes(mix64(n ^ 0x5CA7_7E2D), big)
}

fn value_bytes(h: u64, big: bool) -> Bytes {
    let mut out = h.to_le_bytes().to_vec();
    if big {
        out.resize(BIG_VALUE_BYTES, h as u8);
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_round_trip_and_list_their_references() {
        let args = TaskArgs { id: 7, dur_ms: 30, fail: Fail::First(2), big: true };
        let deps = vec![Key::from("a"), Key::from("b")];
        let bytes = encode_args(&args, &deps);
        assert_eq!(decode_args(&bytes), Ok(args));
        let value: Value = reprise_proto::decode(&bytes).unwrap();
        assert_eq!(reprise_proto::list_refs(&value), deps);
    }

    #[test]
    fn values_depend_on_id_inputs_and_size() {
        let a = task_value(1, false, &[]);
        assert_eq!(a.len(), 8);
        assert_eq!(task_value(1, true, &[]).len(), BIG_VALUE_BYTES);
        assert_ne!(a, task_value(2, false, &[]));
        assert_ne!(a, task_value(1, false, &[(Key::from("x"), a.clone())]));
    }
}
