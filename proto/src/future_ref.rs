//! Future references inside task arguments.
//!
//! A `Future` serialized into a task's arguments becomes the CBOR tag
//! [`FUTURE_REF_TAG`] wrapping its key as a text string. The client lists the
//! tags to find a task's dependencies; the worker replaces each tag with the
//! input's value before calling the function.
use ciborium::value::Value;

use crate::Key;

/// The CBOR tag that marks a future reference (an unassigned tag number).
pub const FUTURE_REF_TAG: u64 = 39_277;

/// The CBOR value of a reference to `key`.
pub fn future_ref_value(key: &Key) -> Value {
    Value::Tag(FUTURE_REF_TAG, Box::new(Value::Text(key.0.clone())))
}

/// Every key referenced in `value`, nested in arrays, maps and other tags
/// included, deduplicated, in first-seen order.
///
/// ```
/// use ciborium::value::Value;
/// use reprise_proto::{future_ref_value, list_refs, Key};
/// let a = Key::from("inc-a");
/// let v = Value::Array(vec![Value::Integer(1.into()), Value::Map(vec![(Value::Text("x".into()), future_ref_value(&a))])]);
/// assert_eq!(list_refs(&v), vec![a]);
/// ```
pub fn list_refs(value: &Value) -> Vec<Key> {
    let mut out = Vec::new();
    walk(value, &mut |k| {
        if !out.iter().any(|o: &Key| o.0 == k) {
            out.push(Key(k.to_owned()));
        }
    });
    out
}

fn walk(value: &Value, f: &mut impl FnMut(&str)) {
    match value {
        Value::Tag(FUTURE_REF_TAG, inner) => match inner.as_ref() {
            Value::Text(k) => f(k),
            other => walk(other, f),
        },
        Value::Tag(_, inner) => walk(inner, f),
        Value::Array(items) => items.iter().for_each(|v| walk(v, f)),
        Value::Map(entries) => entries.iter().for_each(|(k, v)| {
            walk(k, f);
            walk(v, f);
        }),
        _ => {}
    }
}

/// Replace every reference in `value` by `lookup(key)`. Fails with the first
/// key that `lookup` cannot resolve.
///
/// ```
/// use ciborium::value::Value;
/// use reprise_proto::{future_ref_value, replace_refs, Key};
/// let v = Value::Array(vec![future_ref_value(&Key::from("k"))]);
/// let out = replace_refs(v, &mut |_k| Some(Value::Integer(7.into()))).unwrap();
/// assert_eq!(out, Value::Array(vec![Value::Integer(7.into())]));
/// ```
pub fn replace_refs(value: Value, lookup: &mut impl FnMut(&Key) -> Option<Value>) -> Result<Value, Key> {
    Ok(match value {
        Value::Tag(FUTURE_REF_TAG, inner) => match *inner {
            Value::Text(k) => {
                let key = Key(k);
                return lookup(&key).ok_or(key);
            }
            other => Value::Tag(FUTURE_REF_TAG, Box::new(replace_refs(other, lookup)?)),
        },
        Value::Tag(t, inner) => Value::Tag(t, Box::new(replace_refs(*inner, lookup)?)),
        Value::Array(items) => Value::Array(items.into_iter().map(|v| replace_refs(v, lookup)).collect::<Result<_, _>>()?),
        Value::Map(entries) => Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| Ok((replace_refs(k, lookup)?, replace_refs(v, lookup)?)))
                .collect::<Result<_, Key>>()?,
        ),
        other => other,
    })
}
