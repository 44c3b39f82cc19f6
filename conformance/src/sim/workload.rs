//! The simulated clients: closed-loop connections that send a drawn operation once their
//! previous request completed, up to [`WORKLOAD_REQUESTS_MAX`](super::WORKLOAD_REQUESTS_MAX)
//! requests in a run, and the single requests the faults send.

use vigil_core as core;

use super::world::World;
use super::{CLUSTER, WORKLOAD_REQUESTS_MAX};

/// One client connection's workload.
pub(super) struct Client {
    pub(super) id: u64,
    pub(super) next_request_id: u64,
    pub(super) outstanding: Option<u64>,
    pub(super) ready_tick: u64,
}

impl World {
    pub(super) fn workload(&mut self) {
        if !self.workload_open {
            return;
        }
        for index in 0..self.clients.len() {
            let client = &self.clients[index];
            if client.outstanding.is_some()
                || client.ready_tick > self.tick
                || self.requests_sent >= WORKLOAD_REQUESTS_MAX
            {
                continue;
            }
            let (id, request_id) = (client.id, client.next_request_id);
            let operation = self.operation();
            self.clients[index].next_request_id += 1;
            self.clients[index].outstanding = Some(request_id);
            self.requests_sent += 1;
            self.request(id, request_id, CLUSTER, operation);
        }
    }

    pub(super) fn operation(&mut self) -> core::Operation {
        let key = format!("k{}", self.rng.below(2)).into_bytes();
        let value = format!("v{}", self.rng.below(3)).into_bytes();
        match self.rng.below(6) {
            0 | 1 => core::Operation::Put { key, value },
            2 | 3 => core::Operation::Get { key },
            4 => core::Operation::Cas {
                key,
                expected_version: self.rng.below(3),
                value,
            },
            _ => core::Operation::Delete { key },
        }
    }

    pub(super) fn request(
        &mut self,
        client: u64,
        request_id: u64,
        cluster: &str,
        operation: core::Operation,
    ) {
        self.completions.entry((client, request_id)).or_insert(0);
        self.proxy
            .handle_request(client, request_id, cluster, operation);
        self.drain_proxy(None);
    }
}

/// A `Get` of `key`.
pub(super) fn get(key: &str) -> core::Operation {
    core::Operation::Get {
        key: key.as_bytes().to_vec(),
    }
}
