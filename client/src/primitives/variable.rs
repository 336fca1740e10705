//! `Variable`: one named slot, last writer wins.
use std::time::Duration;

use reprise_proto::PrimitiveOp;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{check_name, done, encode_value, future_value, millis, one_value, unique_name};
use crate::client::Client;
use crate::error::Result;
use crate::future::Future;

/// A named variable in the scheduler (Dask's `Variable`): `set` replaces
/// the value, `get` waits until there is one. A future set with
/// [`Variable::set_future`] stays alive while it is the value.
///
/// ```no_run
/// # async fn demo(client: reprise_client::Client) -> reprise_client::Result<()> {
/// use std::time::Duration;
/// let v = reprise_client::Variable::new(&client, "threshold");
/// v.set(&0.5).await?;
/// let x: f64 = v.get(Some(Duration::from_secs(1))).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Variable {
    client: Client,
    name: String,
}

impl Variable {
    /// A handle on the variable `name` (nothing is sent yet).
    pub fn new(client: &Client, name: impl Into<String>) -> Variable {
        Variable { client: client.clone(), name: name.into() }
    }

    /// A handle on a variable with a fresh name.
    pub fn new_unique(client: &Client) -> Variable {
        Variable::new(client, unique_name("variable"))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Replace the value; returns once the change is durable.
    pub async fn set<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        check_name(&self.name)?;
        let value = encode_value(value, &self.what())?;
        let op = PrimitiveOp::VariableSet { name: self.name.clone(), value };
        done(self.client.ask(op, self.client.request_bound()).await?, &self.what())
    }

    /// Make the future the value: it stays alive while it is. A cancelled
    /// future is refused with `Error::Cancelled`.
    pub async fn set_future<T>(&self, fut: &Future<T>) -> Result<()> {
        check_name(&self.name)?;
        let value = future_value(fut)?;
        let _alive = fut.clone(); // kept until the scheduler holds it
        let op = PrimitiveOp::VariableSet { name: self.name.clone(), value };
        done(self.client.ask(op, self.client.request_bound()).await?, &self.what())
    }

    /// The value, waiting up to `timeout` (`None`: for ever) for a first
    /// set; `Error::Timeout` if none comes. A future value is waited for;
    /// a value that does not decode as `T` is `Error::Codec`.
    pub async fn get<T: DeserializeOwned>(&self, timeout: Option<Duration>) -> Result<T> {
        self.get_raw::<T>(timeout).await?.value(&self.what()).await
    }

    /// The future the variable holds, waiting as [`Variable::get`] does.
    pub async fn get_future<T>(&self, timeout: Option<Duration>) -> Result<Future<T>> {
        self.get_raw::<T>(timeout).await?.future(&self.what())
    }

    /// Empty the variable (a future it held is let go).
    pub async fn delete(&self) -> Result<()> {
        check_name(&self.name)?;
        let op = PrimitiveOp::VariableDelete { name: self.name.clone() };
        done(self.client.ask(op, self.client.request_bound()).await?, &self.what())
    }

    async fn get_raw<T>(&self, timeout: Option<Duration>) -> Result<super::Got<T>> {
        check_name(&self.name)?;
        let op = PrimitiveOp::VariableGet { name: self.name.clone(), timeout_ms: timeout.map(millis) };
        let result = self.client.ask(op, self.client.wait_bound(timeout)).await?;
        one_value(&self.client, result, &self.what())
    }

    fn what(&self) -> String {
        format!("variable {:?}", self.name)
    }
}
