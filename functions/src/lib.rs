//! The reactions of the loop, written once against the ports: launch, the answer's consequences,
//! and the scheduled work. The local process calls them directly; Lambda mains wrap them.

pub mod dispatch;
pub mod launch;
pub mod messages;
pub mod privacy;
pub mod schedule;
pub mod updates;
pub mod webhooks;

use std::sync::Arc;

use closeloop_core::ports::{Clock, Links, Mailer, SendError, SmsSender, Store, StoreError};
use closeloop_views::render::RenderError;

/// The adapters a reaction needs, wired once by the entry point.
#[derive(Clone)]
pub struct Services {
    pub store: Arc<dyn Store>,
    pub mailer: Arc<dyn Mailer>,
    pub sms: Arc<dyn SmsSender>,
    pub clock: Arc<dyn Clock>,
    pub links: Links,
}

#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Send(#[from] SendError),
    #[error(transparent)]
    Render(#[from] RenderError),
    /// A record the event points at is gone: retrying cannot bring it back.
    #[error("{0} not found")]
    Missing(String),
    /// Work handed to a blocking thread (rendering a batch) did not finish: the runtime is
    /// shutting down. Nothing was sent for it; the next run does it.
    #[error("interrupted: {0}")]
    Interrupted(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl FunctionError {
    /// Whether running the same step again may succeed; the platform retries only these.
    pub fn is_retryable(&self) -> bool {
        match self {
            FunctionError::Store(e) => e.is_retryable(),
            FunctionError::Send(SendError::Transient(_)) | FunctionError::Interrupted(_) => true,
            FunctionError::Send(SendError::Permanent(_))
            | FunctionError::Render(_)
            | FunctionError::Missing(_) => false,
        }
    }
}
