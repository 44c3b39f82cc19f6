//! A running master as seen from outside its task: its address, its status on request, and
//! stopping it.

use std::net::SocketAddr;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vigil_core::MasterStatus;

use super::MasterError;

/// A request for the core's status, from outside the master's task: the driver answers on it.
pub type StatusRequest = oneshot::Sender<MasterStatus>;

/// Status requests waiting for the driver at most.
pub(super) const STATUS_REQUESTS_MAX: usize = 16;

/// A running master, as seen by whoever started it.
#[derive(Debug)]
pub struct MasterHandle {
    /// The address it listens on.
    pub address: SocketAddr,
    status_requests: StatusQuery,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), MasterError>>,
}

impl MasterHandle {
    pub(super) fn new(
        address: SocketAddr,
        status_requests: StatusQuery,
        shutdown: CancellationToken,
        task: JoinHandle<Result<(), MasterError>>,
    ) -> MasterHandle {
        MasterHandle {
            address,
            status_requests,
            shutdown,
            task,
        }
    }

    /// The core's status, or `None` if the master has stopped.
    pub async fn status(&self) -> Option<MasterStatus> {
        self.status_requests.status().await
    }

    /// A cloneable way to ask for the core's status (the HTTP `/status` endpoint).
    pub fn status_query(&self) -> StatusQuery {
        self.status_requests.clone()
    }

    /// True once the master's task has ended (stopped or failed).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops the master (a crash, as far as the protocol knows: volatile state is lost) and
    /// waits until its storage is closed, so it can be restarted from the same directory.
    pub async fn stop(self) -> Result<(), MasterError> {
        self.shutdown.cancel();
        self.task.await.unwrap_or(Err(MasterError::PersistTask))
    }
}

/// Asks a running master for its status, from outside its task.
#[derive(Clone, Debug)]
pub struct StatusQuery {
    requests: mpsc::Sender<StatusRequest>,
}

impl StatusQuery {
    pub(super) fn new(requests: mpsc::Sender<StatusRequest>) -> StatusQuery {
        StatusQuery { requests }
    }
}

impl StatusQuery {
    /// The core's status, or `None` if the master has stopped.
    pub async fn status(&self) -> Option<MasterStatus> {
        let (reply, answer) = oneshot::channel();
        self.requests.send(reply).await.ok()?;
        answer.await.ok()
    }
}
