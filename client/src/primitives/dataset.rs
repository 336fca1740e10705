//! Published datasets: futures named cluster-wide, kept alive by the name.
use reprise_proto::{PrimitiveOp, PrimitiveResult};

use super::{check_name, done, failure, future_value, one_value};
use crate::client::Client;
use crate::error::Result;
use crate::future::Future;

impl Client {
    /// Publish `fut` under `name`: any client can get it with
    /// [`Client::get_dataset`], and it stays alive until unpublished.
    /// Publishing the same future again is harmless; another one under a
    /// name in use is `Error::Invalid`; a cancelled one `Error::Cancelled`.
    pub async fn publish_dataset<T>(&self, name: impl Into<String>, fut: &Future<T>) -> Result<()> {
        let name = name.into();
        check_name(&name)?;
        let key = future_value(fut)?.key().cloned().unwrap_or_else(|| fut.key_ref().clone());
        let _alive = fut.clone(); // kept until the dataset holds it
        let what = format!("dataset {name:?}");
        done(self.ask(PrimitiveOp::DatasetPublish { name, key }, self.request_bound()).await?, &what)
    }

    /// The future published under `name`; `Error::NotFound` if there is none.
    pub async fn get_dataset<T>(&self, name: impl Into<String>) -> Result<Future<T>> {
        let name = name.into();
        check_name(&name)?;
        let what = format!("dataset {name:?}");
        let result = self.ask(PrimitiveOp::DatasetGet { name }, self.request_bound()).await?;
        one_value::<T>(self, result, &what)?.future(&what)
    }

    /// The names of the published datasets, sorted.
    pub async fn list_datasets(&self) -> Result<Vec<String>> {
        match self.ask(PrimitiveOp::DatasetList, self.request_bound()).await? {
            PrimitiveResult::Names(names) => Ok(names),
            other => Err(failure(other, "list_datasets")),
        }
    }

    /// Withdraw the name; its future is let go (if nobody else holds it, it
    /// is released). `Error::NotFound` if nothing is published under it.
    pub async fn unpublish_dataset(&self, name: impl Into<String>) -> Result<()> {
        let name = name.into();
        check_name(&name)?;
        let what = format!("dataset {name:?}");
        done(self.ask(PrimitiveOp::DatasetUnpublish { name }, self.request_bound()).await?, &what)
    }
}
