//! A stop-the-world pause of one host, as `SIGSTOP` makes it: every task of the host stops
//! being polled while its gate is closed, and runs again when it opens.
//!
//! Why a gate around each task rather than a flag in the host: the host's code then runs
//! unchanged, and what a pause does to it is what a real one does. Its timers keep running in
//! real (or simulated) time, so the ticks that fell due during the pause are due at once when
//! the gate opens, and the driver's `TickClock` sees the gap exactly as after a real pause (the
//! core's `resume`, `docs/protocol.md` §7.2). What peers send meanwhile waits in the network
//! (a socket's buffers, a simulated link), not in the host.
//!
//! A task is frozen at its next await point, never in the middle of a poll, and blocking work
//! already handed to a thread finishes (as a disk write in flight does under `SIGSTOP`).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// Opens and closes one host's gate; cheap to clone (every clone is the same gate).
#[derive(Clone, Debug, Default)]
pub struct PauseGate {
    state: Arc<Mutex<GateState>>,
}

#[derive(Debug, Default)]
struct GateState {
    closed: bool,
    /// The tasks polled while the gate was closed, in the order they were polled (woken in
    /// that order when it opens, which keeps a simulation deterministic).
    waiting: Vec<Waker>,
}

impl PauseGate {
    /// An open gate.
    pub fn new() -> PauseGate {
        PauseGate::default()
    }

    fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Freezes every task wrapped by this gate at its next await point.
    pub fn close(&self) {
        self.lock().closed = true;
    }

    /// Lets the frozen tasks run again: each is woken, in the order it was frozen.
    pub fn open(&self) {
        let waiting = {
            let mut state = self.lock();
            state.closed = false;
            std::mem::take(&mut state.waiting)
        };
        for waker in waiting {
            waker.wake();
        }
    }

    /// Whether the gate is closed (the host is paused).
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// `task`, polled only while this gate is open.
    pub fn wrap<T: Future>(&self, task: T) -> Gated<T> {
        Gated {
            gate: self.clone(),
            task: Box::pin(task),
        }
    }
}

/// A future that is polled only while its [`PauseGate`] is open.
#[derive(Debug)]
pub struct Gated<T> {
    gate: PauseGate,
    task: Pin<Box<T>>,
}

impl<T: Future> Future for Gated<T> {
    type Output = T::Output;

    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<T::Output> {
        {
            let mut state = self.gate.lock();
            if state.closed {
                let waker = context.waker();
                if !state.waiting.iter().any(|waiting| waiting.will_wake(waker)) {
                    state.waiting.push(waker.clone());
                }
                return Poll::Pending;
            }
        }
        self.task.as_mut().poll(context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_closed_gate_freezes_its_tasks_until_it_opens() {
        let gate = PauseGate::new();
        let (input, mut inputs) = tokio::sync::mpsc::unbounded_channel::<u32>();
        let (output, mut outputs) = tokio::sync::mpsc::unbounded_channel::<u32>();
        let task = tokio::spawn(gate.wrap(async move {
            while let Some(value) = inputs.recv().await {
                let _ = output.send(value);
            }
        }));
        input.send(1).unwrap();
        assert_eq!(
            outputs.recv().await,
            Some(1),
            "an open gate lets the task run"
        );
        gate.close();
        assert!(gate.is_closed());
        input.send(2).unwrap();
        input.send(3).unwrap();
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert!(
            outputs.try_recv().is_err(),
            "nothing runs while the gate is closed"
        );
        gate.open();
        assert_eq!(
            outputs.recv().await,
            Some(2),
            "what waited is handled on opening"
        );
        assert_eq!(outputs.recv().await, Some(3));
        drop(input);
        task.await.unwrap();
    }
}
