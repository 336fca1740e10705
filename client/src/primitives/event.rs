//! `Event`: a named flag that clients wait on.
use std::time::Duration;

use reprise_proto::{PrimitiveOp, PrimitiveResult};

use super::{check_name, done, failure, millis, unique_name};
use crate::client::Client;
use crate::error::Result;

/// A named event in the scheduler (Dask's `Event`): `wait` blocks until
/// the event is set; one `set` wakes every waiter. Set, clear and wait can
/// repeat.
///
/// ```no_run
/// # async fn demo(client: reprise_client::Client) -> reprise_client::Result<()> {
/// use std::time::Duration;
/// let ready = reprise_client::Event::new(&client, "data-ready");
/// if !ready.wait(Some(Duration::from_secs(5))).await? {
///     println!("not ready after 5 s");
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Event {
    client: Client,
    name: String,
}

impl Event {
    /// A handle on the event `name` (nothing is sent yet).
    pub fn new(client: &Client, name: impl Into<String>) -> Event {
        Event { client: client.clone(), name: name.into() }
    }

    /// A handle on an event with a fresh name.
    pub fn new_unique(client: &Client) -> Event {
        Event::new(client, unique_name("event"))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Set the event, waking every waiter.
    pub async fn set(&self) -> Result<()> {
        self.simple(PrimitiveOp::EventSet { name: self.name.clone() }).await
    }

    /// Clear the event: later waits block again.
    pub async fn clear(&self) -> Result<()> {
        self.simple(PrimitiveOp::EventClear { name: self.name.clone() }).await
    }

    pub async fn is_set(&self) -> Result<bool> {
        check_name(&self.name)?;
        let op = PrimitiveOp::EventIsSet { name: self.name.clone() };
        self.boolean(self.client.ask(op, self.client.request_bound()).await?)
    }

    /// Wait until the event is set: `true` once it is, `false` if `timeout`
    /// (`None`: for ever) runs out first.
    pub async fn wait(&self, timeout: Option<Duration>) -> Result<bool> {
        check_name(&self.name)?;
        let op = PrimitiveOp::EventWait { name: self.name.clone(), timeout_ms: timeout.map(millis) };
        self.boolean(self.client.ask(op, self.client.wait_bound(timeout)).await?)
    }

    async fn simple(&self, op: PrimitiveOp) -> Result<()> {
        check_name(&self.name)?;
        done(self.client.ask(op, self.client.request_bound()).await?, &self.what())
    }

    fn boolean(&self, result: PrimitiveResult) -> Result<bool> {
        match result {
            PrimitiveResult::Bool(b) => Ok(b),
            other => Err(failure(other, &self.what())),
        }
    }

    fn what(&self) -> String {
        format!("event {:?}", self.name)
    }
}
