//! Turning a task's encoded arguments and inputs into the bytes its
//! function decodes: future references replaced by the inputs' values, and
//! the argument list checked against the function's arity.
use std::borrow::Cow;
use std::collections::BTreeMap;

use bytes::Bytes;
use ciborium::value::Value;
use reprise_proto::{decode, encode, list_refs, replace_refs, Key, TaskErrorKind};

use crate::registry::Failure;

/// The arguments as one CBOR array of exactly `arity` items, with every
/// future reference replaced by its input's value.
///
/// `args` is the CBOR of the argument tuple: an array with one item per
/// argument (`null` is accepted for no arguments, and a value that is not an
/// array is taken as the only argument of a one-argument function). When
/// nothing needs changing the original bytes are returned as they are.
pub(crate) fn prepare_args<'a>(
    func: &str,
    arity: usize,
    args: &'a [u8],
    inputs: &[(Key, Bytes)],
) -> Result<Cow<'a, [u8]>, Failure> {
    let value: Value = decode(args)
        .map_err(|e| Failure::new(TaskErrorKind::Codec, format!("the arguments of `{func}` are not valid CBOR: {e}")))?;
    let has_refs = !list_refs(&value).is_empty();
    let value = if has_refs { substitute_inputs(func, value, inputs)? } else { value };
    let (items, reshaped) = match value {
        Value::Array(items) => (items, false),
        Value::Null => (Vec::new(), true),
        other if arity == 1 => (vec![other], true),
        other => {
            let what = describe(&other);
            return Err(Failure::new(
                TaskErrorKind::Codec,
                format!("`{func}` takes {arity} arguments, passed as an array; got {what}"),
            ));
        }
    };
    if items.len() != arity {
        return Err(Failure::new(
            TaskErrorKind::Codec,
            format!("`{func}` takes {arity} argument(s) but was given {}", items.len()),
        ));
    }
    if !has_refs && !reshaped {
        return Ok(Cow::Borrowed(args));
    }
    // Decoding from bytes (not from the `Value`) keeps the worker's decoding
    // identical to the client's: ciborium's byte decoder, unlike its `Value`
    // decoder, reads a CBOR byte string into a `Vec<u8>`.
    encode(&Value::Array(items))
        .map(Cow::Owned)
        .map_err(|e| Failure::new(TaskErrorKind::Codec, format!("cannot re-encode the arguments of `{func}`: {e}")))
}

/// The arguments with every future reference replaced by its input's
/// value, their shape left as it is (for an actor's creation arguments,
/// whose arity the worker does not know).
pub(crate) fn substitute_refs<'a>(func: &str, args: &'a [u8], inputs: &[(Key, Bytes)]) -> Result<Cow<'a, [u8]>, Failure> {
    let value: Value = decode(args)
        .map_err(|e| Failure::new(TaskErrorKind::Codec, format!("the arguments of `{func}` are not valid CBOR: {e}")))?;
    if list_refs(&value).is_empty() {
        return Ok(Cow::Borrowed(args));
    }
    let value = substitute_inputs(func, value, inputs)?;
    encode(&value)
        .map(Cow::Owned)
        .map_err(|e| Failure::new(TaskErrorKind::Codec, format!("cannot re-encode the arguments of `{func}`: {e}")))
}

fn substitute_inputs(func: &str, value: Value, inputs: &[(Key, Bytes)]) -> Result<Value, Failure> {
    let mut decoded = BTreeMap::new();
    for (key, bytes) in inputs {
        let input: Value = decode(bytes).map_err(|e| {
            Failure::new(TaskErrorKind::Codec, format!("input `{key}` of `{func}` is not valid CBOR: {e}"))
        })?;
        decoded.insert(key.clone(), input);
    }
    replace_refs(value, &mut |key| decoded.get(key).cloned()).map_err(|key| {
        Failure::new(
            TaskErrorKind::LostDependency,
            format!("the arguments of `{func}` refer to `{key}`, which is not among the task's inputs"),
        )
    })
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Integer(_) => "an integer",
        Value::Bytes(_) => "a byte string",
        Value::Float(_) => "a float",
        Value::Text(_) => "a text string",
        Value::Bool(_) => "a bool",
        Value::Null => "null",
        Value::Tag(..) => "a tagged value",
        Value::Array(_) => "an array",
        Value::Map(_) => "a map",
        _ => "an unknown CBOR value",
    }
}

#[cfg(test)]
mod tests {
    use reprise_proto::future_ref_value;

    use super::*;

    fn int(i: i64) -> Value {
        Value::Integer(i.into())
    }

    fn enc(v: &Value) -> Vec<u8> {
        encode(v).unwrap()
    }

    fn input(key: &str, v: &Value) -> (Key, Bytes) {
        (Key::from(key), Bytes::from(enc(v)))
    }

    #[test]
    fn nested_references_are_replaced_by_input_values() {
        let a = Key::from("inc-a");
        let b = Key::from("inc-b");
        let args = Value::Array(vec![
            future_ref_value(&a),
            Value::Array(vec![int(1), future_ref_value(&b), Value::Map(vec![(Value::Text("k".into()), future_ref_value(&a))])]),
        ]);
        let inputs = [input("inc-a", &int(10)), input("inc-b", &Value::Text("bee".into()))];
        let bytes = enc(&args);
        let out = prepare_args("f", 2, &bytes, &inputs).unwrap();
        let got: Value = decode(&out).unwrap();
        let want = Value::Array(vec![
            int(10),
            Value::Array(vec![int(1), Value::Text("bee".into()), Value::Map(vec![(Value::Text("k".into()), int(10))])]),
        ]);
        assert_eq!(got, want);
    }

    #[test]
    fn byte_string_input_decodes_as_vec_u8() {
        let a = Key::from("bytes-a");
        let args = Value::Array(vec![future_ref_value(&a)]);
        let inputs = [input("bytes-a", &Value::Bytes(vec![1, 2, 3]))];
        let bytes = enc(&args);
        let out = prepare_args("len", 1, &bytes, &inputs).unwrap();
        let (v,): (Vec<u8>,) = decode(&out).unwrap();
        assert_eq!(v, vec![1, 2, 3]);
    }

    #[test]
    fn arguments_without_references_pass_through_unchanged() {
        let bytes = enc(&Value::Array(vec![int(1), int(2)]));
        let out = prepare_args("add", 2, &bytes, &[]).unwrap();
        assert!(matches!(out, Cow::Borrowed(_)));
    }

    #[test]
    fn wrong_argument_count_is_a_codec_failure() {
        let bytes = enc(&Value::Array(vec![int(1), int(2), int(3)]));
        let err = prepare_args("add", 2, &bytes, &[]).unwrap_err();
        assert_eq!(err.kind, TaskErrorKind::Codec);
        assert!(err.message.contains("takes 2 argument(s) but was given 3"), "{}", err.message);
    }

    #[test]
    fn null_means_no_arguments_and_a_bare_value_is_the_only_argument() {
        assert!(prepare_args("noop", 0, &enc(&Value::Null), &[]).is_ok());
        let bytes = enc(&int(5));
        let out = prepare_args("inc", 1, &bytes, &[]).unwrap();
        let (x,): (i64,) = decode(&out).unwrap();
        assert_eq!(x, 5);
    }

    #[test]
    fn reference_to_a_missing_input_is_a_lost_dependency() {
        let args = Value::Array(vec![future_ref_value(&Key::from("gone"))]);
        let err = prepare_args("inc", 1, &enc(&args), &[]).unwrap_err();
        assert_eq!(err.kind, TaskErrorKind::LostDependency);
    }

    #[test]
    fn garbage_arguments_are_a_codec_failure() {
        let err = prepare_args("inc", 1, b"\xff\xff", &[]).unwrap_err();
        assert_eq!(err.kind, TaskErrorKind::Codec);
    }
}
