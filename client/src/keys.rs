//! Task keys and argument encoding: pure functions, shared by the client
//! and whoever drives a [`crate::session::Session`] (the simulator).
use ciborium::value::Value;
use reprise_proto::{list_refs, ClientId, Key};
use serde::Serialize;
use xxhash_rust::xxh3::Xxh3;

use crate::error::{Error, Result};

/// The CBOR encoding of an empty argument list (an empty array).
const EMPTY_ARGS: [u8; 1] = [0x80];

/// A task's encoded arguments and the keys they reference.
#[derive(Clone, Debug, PartialEq)]
pub struct EncodedArgs {
    /// The CBOR array of arguments; futures inside are tagged references.
    pub bytes: Vec<u8>,
    /// The futures referenced anywhere inside, deduplicated, first-seen order.
    pub deps: Vec<Key>,
}

/// Encode a task's arguments: a tuple or any sequence (`()` means none).
/// Futures anywhere inside (nested in Vecs, maps, structs) become references
/// and are listed as dependencies.
///
/// ```
/// let a = reprise_client::keys::encode_args(&(1, "x")).unwrap();
/// assert!(a.deps.is_empty());
/// assert!(reprise_client::keys::encode_args(&5).is_err()); // not a sequence
/// ```
pub fn encode_args<A: Serialize + ?Sized>(args: &A) -> Result<EncodedArgs> {
    let bytes = reprise_proto::encode(args)?;
    let value: Value = reprise_proto::decode(&bytes)?;
    match value {
        Value::Array(_) => Ok(EncodedArgs { deps: list_refs(&value), bytes }),
        Value::Null => Ok(EncodedArgs { bytes: EMPTY_ARGS.to_vec(), deps: Vec::new() }),
        _ => Err(Error::Codec(
            "task arguments must be a tuple or a sequence, e.g. `(x,)` for one argument".to_owned(),
        )),
    }
}

/// The key of a pure call: `"{func}-{hash}"`, the hash covering the function
/// name and the encoded arguments, so identical calls share a key.
///
/// ```
/// use reprise_client::keys::pure_key;
/// assert_eq!(pure_key("inc", &[0x81, 0x01]), pure_key("inc", &[0x81, 0x01]));
/// assert_ne!(pure_key("inc", &[0x81, 0x01]), pure_key("inc", &[0x81, 0x02]));
/// assert!(pure_key("inc", &[0x80]).as_str().starts_with("inc-"));
/// ```
pub fn pure_key(func: &str, args: &[u8]) -> Key {
    let mut h = Xxh3::new();
    // The length prefix keeps ("ab", args) and ("a", "b" ++ args) apart.
    h.update(&(func.len() as u64).to_le_bytes());
    h.update(func.as_bytes());
    h.update(args);
    Key(format!("{func}-{:032x}", h.digest128()))
}

/// A key that no other call shares (`pure(false)`): the function name and a
/// hash of this client's id and a per-client counter. Client ids carry a
/// random suffix, so keys of different clients differ.
pub fn unique_key(func: &str, client: &ClientId, n: u64) -> Key {
    let mut h = Xxh3::new();
    h.update(&(client.0.len() as u64).to_le_bytes());
    h.update(client.0.as_bytes());
    h.update(&n.to_le_bytes());
    Key(format!("{func}-{:032x}", h.digest128()))
}

/// The key of scattered data: a hash of the encoded value, so scattering the
/// same value twice gives the same key (Dask's `hash=True`).
pub fn scatter_key(value: &[u8]) -> Key {
    Key(format!("scatter-{:032x}", xxhash_rust::xxh3::xxh3_128(value)))
}

/// The function a key names, for a key of the `"{func}-{hash}"` form.
pub(crate) fn func_of_key(key: &str) -> String {
    key.rsplit_once('-').map_or(key, |(func, _)| func).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ciborium::tag::Required;
    use reprise_proto::FUTURE_REF_TAG;

    fn fut(key: &str) -> Required<&str, FUTURE_REF_TAG> {
        Required(key)
    }

    #[test]
    fn pure_keys_are_stable_and_depend_on_func_and_args() {
        let a = encode_args(&(1, 2)).unwrap();
        // A fixed value: keys must not change between builds, platforms or releases.
        assert_eq!(pure_key("add", &a.bytes).as_str(), "add-c101dddfbf62281066f699bda8ce430e");
        assert_ne!(pure_key("add", &a.bytes), pure_key("sub", &a.bytes));
        assert_ne!(pure_key("add", &a.bytes), pure_key("add", &encode_args(&(2, 1)).unwrap().bytes));
        assert_ne!(pure_key("ab", &[0x80]), pure_key("a", &[b'b', 0x80]));
    }

    #[test]
    fn unique_keys_differ_per_counter_and_client() {
        let c1 = ClientId::from("me-1");
        let c2 = ClientId::from("me-2");
        assert_ne!(unique_key("inc", &c1, 0), unique_key("inc", &c1, 1));
        assert_ne!(unique_key("inc", &c1, 0), unique_key("inc", &c2, 0));
        assert!(unique_key("inc", &c1, 0).as_str().starts_with("inc-"));
    }

    #[test]
    fn deps_are_found_in_nested_arguments_once_in_order() {
        #[derive(Serialize)]
        struct Point<'a> {
            x: Required<&'a str, FUTURE_REF_TAG>,
            label: &'a str,
        }
        let args = (
            fut("b-1"),
            vec![fut("a-1"), fut("b-1")],
            Point { x: fut("c-1"), label: "not a ref" },
            std::collections::BTreeMap::from([("k", fut("d-1"))]),
        );
        let enc = encode_args(&args).unwrap();
        let deps: Vec<&str> = enc.deps.iter().map(|k| k.as_str()).collect();
        assert_eq!(deps, ["b-1", "a-1", "c-1", "d-1"]);
    }

    #[test]
    fn unit_means_no_arguments_and_scalars_are_refused() {
        assert_eq!(encode_args(&()).unwrap().bytes, vec![0x80]);
        assert_eq!(encode_args(&Vec::<i64>::new()).unwrap().bytes, vec![0x80]);
        assert!(matches!(encode_args(&7), Err(Error::Codec(_))));
        assert!(matches!(encode_args("text"), Err(Error::Codec(_))));
    }

    #[test]
    fn func_of_key_strips_the_hash() {
        assert_eq!(func_of_key("my-func-00ff"), "my-func");
        assert_eq!(func_of_key("plain"), "plain");
    }
}
