//! A deterministic in-memory cluster for the golden scenario tests and the property test: N
//! masters, one proxy serving the cluster `local`, and a network that is a plain list of
//! in-flight messages the test controls (deliver, drop, pause, crash), as in etcd-io/raft's
//! interaction tests.
//!
//! The harness is also a reference host: it handles every `Ready` in the documented order
//! (durable write into a `DurableState`, close links, messages, replies, trace) and calls
//! `advance` once the write is durable: at once, or at `release_disk` if the disk is stalled.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write;

use vigil_core::kv_types::KvOperation;
use vigil_core::{
    ClientId, Config, DurableState, Master, Message, NodeId, Operation, Peer, Proxy, Ready,
    TraceKind,
};

/// Whether `message` is a subscription message on the link between the proxy and `node`: a
/// closed connection loses it.
fn is_subscription_message_between(message: &InFlight, node: NodeId) -> bool {
    let on_link = matches!(
        (message.from, message.to),
        (Address::Proxy, Address::Master(to)) if to == node
    ) || matches!(
        (message.from, message.to),
        (Address::Master(from), Address::Proxy) if from == node
    );
    let subscription = matches!(
        message.message,
        Message::Subscribe { .. }
            | Message::Unsubscribe
            | Message::Events { .. }
            | Message::SubscriptionCompacted { .. }
    );
    on_link && subscription
}

/// The proxy's id towards the masters.
pub const PROXY: u64 = 0;
/// The cluster the proxy serves.
pub const CLUSTER: &str = "local";

/// An endpoint of the in-memory network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Address {
    /// A master.
    Master(NodeId),
    /// The proxy.
    Proxy,
}

impl std::fmt::Display for Address {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Master(node) => write!(formatter, "m{node}"),
            Address::Proxy => write!(formatter, "p{PROXY}"),
        }
    }
}

/// A message on its way.
#[derive(Clone, Debug)]
pub struct InFlight {
    /// The sender.
    pub from: Address,
    /// The receiver.
    pub to: Address,
    /// The message.
    pub message: Message,
}

impl std::fmt::Display for InFlight {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}->{} {}", self.from, self.to, self.message)
    }
}

/// Which in-flight messages a command applies to.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only from this endpoint.
    pub from: Option<Address>,
    /// Only to this endpoint.
    pub to: Option<Address>,
    /// Only messages of this name.
    pub name: Option<String>,
    /// Never messages to this endpoint (they stay in flight).
    pub hold: Option<Address>,
}

impl Filter {
    fn matches(&self, message: &InFlight) -> bool {
        self.hold.is_none_or(|hold| hold != message.to)
            && self.from.is_none_or(|from| from == message.from)
            && self.to.is_none_or(|to| to == message.to)
            && self
                .name
                .as_ref()
                .is_none_or(|name| name == message.message.name())
    }
}

/// What a master slot of the cluster holds.
pub enum Host {
    /// Running.
    Up(Box<Master>),
    /// Paused: takes no step; `overdue_ticks` fire on resume before any message (§7.2).
    Paused {
        /// The frozen master.
        master: Box<Master>,
        /// Ticks that passed while paused.
        overdue_ticks: u64,
    },
    /// Crashed: only its storage remains.
    Down,
}

/// The in-memory cluster.
pub struct Cluster {
    /// The configuration of every master and the proxy.
    pub config: Config,
    /// The masters by id.
    pub hosts: BTreeMap<NodeId, Host>,
    /// Each master's durable state, as its storage holds it.
    pub storage: BTreeMap<NodeId, DurableState>,
    /// The proxy.
    pub proxy: Proxy,
    /// In-flight messages, oldest first.
    pub network: Vec<InFlight>,
    /// Replies received by clients: (client, message).
    pub client_replies: Vec<(ClientId, Message)>,
    /// Every commit seen, slot → command text, to check agreement across masters.
    pub chosen: BTreeMap<u64, String>,
    /// Agreement violations found (slot, first command, second command).
    pub violations: Vec<String>,
    /// Lines printed by the current command.
    pub output: String,
    /// Whether deliveries and client replies are printed.
    pub verbose: bool,
    /// Masters cut off from the network: what they send or are sent is dropped on delivery.
    pub isolated: std::collections::BTreeSet<NodeId>,
    /// Masters whose disk is stalled (a slow fsync), with the `Ready` batches waiting for it,
    /// oldest first: their messages and replies already left; their durable write waits, and
    /// they are not advanced yet (so what waits for the write is not released).
    pub disk_stalled: BTreeMap<NodeId, Vec<Ready>>,
}

impl Cluster {
    /// `masters` fresh masters and a proxy, with `config` (whose `masters` is overwritten).
    pub fn new(masters: u64, mut config: Config) -> Cluster {
        config.masters = masters;
        let mut hosts = BTreeMap::new();
        let mut storage = BTreeMap::new();
        for node in 0..masters {
            let durable = DurableState::default();
            let mut master =
                Master::new(node, config.clone(), durable.clone()).expect("valid config");
            master.set_tracing(true);
            hosts.insert(node, Host::Up(Box::new(master)));
            storage.insert(node, durable);
        }
        let clusters = BTreeMap::from([(CLUSTER.to_string(), (0..masters).collect())]);
        let mut proxy = Proxy::new(PROXY, config.clone(), clusters).expect("valid proxy config");
        proxy.set_tracing(true);
        let mut cluster = Cluster {
            config,
            hosts,
            storage,
            proxy,
            network: Vec::new(),
            client_replies: Vec::new(),
            chosen: BTreeMap::new(),
            violations: Vec::new(),
            output: String::new(),
            verbose: true,
            isolated: Default::default(),
            disk_stalled: BTreeMap::new(),
        };
        for node in 0..masters {
            cluster.drain_master(node);
        }
        cluster.output.clear();
        cluster
    }

    /// The master `node` if it is up.
    pub fn master(&self, node: NodeId) -> Option<&Master> {
        match self.hosts.get(&node) {
            Some(Host::Up(master)) | Some(Host::Paused { master, .. }) => Some(master),
            _ => None,
        }
    }

    fn running(&mut self, node: NodeId) -> Option<&mut Master> {
        match self.hosts.get_mut(&node) {
            Some(Host::Up(master)) => Some(master),
            _ => None,
        }
    }

    /// Every master id.
    pub fn nodes(&self) -> Vec<NodeId> {
        self.hosts.keys().copied().collect()
    }

    /// Handles every `Ready` of `node` the way a host must, printing its named events.
    pub fn drain_master(&mut self, node: NodeId) {
        loop {
            let Some(master) = self.running(node) else {
                return;
            };
            if !master.has_ready() {
                return;
            }
            let ready = master.ready();
            self.handle_ready_before_disk(node, &ready);
            if let Some(waiting) = self.disk_stalled.get_mut(&node) {
                waiting.push(ready);
                continue;
            }
            self.persist(node, &ready);
            let master = self.running(node).expect("still running");
            master.advance(ready);
        }
    }

    /// Stalls `node`'s disk: from now on its `Ready` batches wait for `release_disk`.
    pub fn stall_disk(&mut self, node: NodeId) {
        self.disk_stalled.entry(node).or_default();
    }

    /// The disk of `node` catches up: every waiting batch is persisted and advanced, in order
    /// (printing each batch that waited for something); what that releases is sent; then the
    /// disk is no longer stalled.
    pub fn release_disk(&mut self, node: NodeId) {
        let waiting = self.disk_stalled.remove(&node).unwrap_or_default();
        let _ = writeln!(self.output, "m{node} advances {} batches", waiting.len());
        for ready in waiting {
            let entries: Vec<u64> = ready
                .durable
                .iter()
                .flat_map(|write| write.entries.iter().map(|entry| entry.slot))
                .collect();
            let held = ready.held_messages();
            if !entries.is_empty() || held > 0 {
                let _ = writeln!(
                    self.output,
                    "m{node} persisted entries={entries:?} releasing {held} held messages"
                );
            }
            self.persist(node, &ready);
            let Some(master) = self.running(node) else {
                return;
            };
            master.advance(ready);
        }
        self.drain_master(node);
    }

    /// Eviction closes the leader's channel to the follower: what the leader had queued on it
    /// is lost. What the follower already sent is on the wire and may still arrive. This
    /// network plays a host whose queue still held everything it sent to the follower; the
    /// other case the model allows (`protocol.md` §5.1: what was already written stays
    /// deliverable) is the core simulation's (`conformance/src/sim.rs`), whose scripts would
    /// otherwise need a `drop` after every eviction to tell the stories below.
    fn close_links(&mut self, node: NodeId, followers: &[NodeId]) {
        for follower in followers {
            let (leader, follower) = (Address::Master(node), Address::Master(*follower));
            self.network
                .retain(|message| !(message.from == leader && message.to == follower));
        }
    }

    /// What does not wait for the disk, in the contract's order: close links, messages,
    /// replies, trace events.
    fn handle_ready_before_disk(&mut self, node: NodeId, ready: &Ready) {
        self.close_links(node, &ready.close_links);
        self.push_envelopes(node, &ready.messages);
        self.push_envelopes(node, &ready.replies);
        for event in &ready.trace {
            self.note_event(node, &event.kind);
        }
    }

    /// The durable write, into the master's storage (then `advance` may be called).
    fn persist(&mut self, node: NodeId, ready: &Ready) {
        if let Some(write) = &ready.durable {
            self.storage.get_mut(&node).expect("storage").apply(write);
        }
    }

    fn push_envelopes(&mut self, node: NodeId, envelopes: &[vigil_core::Envelope]) {
        for envelope in envelopes {
            let to = match envelope.to {
                Peer::Master(to) => Address::Master(to),
                Peer::Proxy(_) => Address::Proxy,
            };
            self.network.push(InFlight {
                from: Address::Master(node),
                to,
                message: envelope.message.clone(),
            });
        }
    }

    fn note_event(&mut self, node: NodeId, kind: &TraceKind) {
        match kind {
            TraceKind::Send { .. } | TraceKind::Receive { .. } => {}
            TraceKind::Timeout {
                timer: vigil_core::Timer::Heartbeat,
            } => {}
            TraceKind::CommitAdvance { from, to } => {
                self.check_agreement(node, *from, *to);
                let _ = writeln!(self.output, "m{node} {kind}");
            }
            _ => {
                let _ = writeln!(self.output, "m{node} {kind}");
            }
        }
    }

    fn check_agreement(&mut self, node: NodeId, from: u64, to: u64) {
        let Some(master) = self.master(node) else {
            return;
        };
        let mut seen = Vec::new();
        for slot in from + 1..=to {
            if let Some(entry) = master.entry(slot) {
                seen.push((slot, entry.command.to_string()));
            }
        }
        for (slot, command) in seen {
            match self.chosen.get(&slot) {
                Some(previous) if *previous != command => self.violations.push(format!(
                    "slot {slot}: m{node} committed {command}, another committed {previous}"
                )),
                Some(_) => {}
                None => {
                    self.chosen.insert(slot, command);
                }
            }
        }
    }

    /// Handles the proxy's output: proposals go on the network, replies to clients.
    pub fn drain_proxy(&mut self) {
        let ready = self.proxy.ready();
        for envelope in ready.messages {
            self.network.push(InFlight {
                from: Address::Proxy,
                to: Address::Master(envelope.to),
                message: envelope.message,
            });
        }
        for event in ready.trace {
            if let TraceKind::Timeout { .. } | TraceKind::LateReply { .. } = event.kind {
                let _ = writeln!(self.output, "p{PROXY} {}", event.kind);
            }
        }
        for reply in ready.replies {
            if self.verbose {
                let _ = writeln!(self.output, "p{PROXY}->c{} {}", reply.to, reply.message);
            }
            self.client_replies.push((reply.to, reply.message));
        }
    }

    /// One tick for the listed masters (all if empty) and the proxy; paused masters accumulate
    /// overdue ticks.
    pub fn tick(&mut self, nodes: &[NodeId], proxy: bool) {
        let nodes = if nodes.is_empty() {
            self.nodes()
        } else {
            nodes.to_vec()
        };
        for node in nodes {
            match self.hosts.get_mut(&node) {
                Some(Host::Up(master)) => master.tick(),
                Some(Host::Paused { overdue_ticks, .. }) => *overdue_ticks += 1,
                _ => continue,
            }
            self.drain_master(node);
        }
        if proxy {
            self.proxy.tick();
            self.drain_proxy();
        }
    }

    /// True if `message` can be delivered now (its receiver is not paused).
    fn deliverable(&self, message: &InFlight) -> bool {
        match message.to {
            Address::Master(node) => !matches!(self.hosts.get(&node), Some(Host::Paused { .. })),
            Address::Proxy => true,
        }
    }

    /// Delivers every in-flight message matching `filter` (except to paused masters); messages
    /// they cause wait for the next delivery. Returns how many were delivered.
    pub fn deliver(&mut self, filter: &Filter) -> usize {
        let network = std::mem::take(&mut self.network);
        let (selected, kept): (Vec<InFlight>, Vec<InFlight>) = network
            .into_iter()
            .partition(|message| filter.matches(message) && self.deliverable(message));
        self.network = kept;
        let count = selected.len();
        for message in selected {
            self.deliver_one(message);
        }
        count
    }

    /// Delivers one message now.
    pub fn deliver_one(&mut self, message: InFlight) {
        let cut_off = [message.from, message.to]
            .iter()
            .any(|end| matches!(end, Address::Master(node) if self.isolated.contains(node)));
        if cut_off {
            let _ = writeln!(self.output, "dropped {message}");
            return;
        }
        if self.verbose {
            let _ = writeln!(self.output, "{message}");
        }
        let from = match message.from {
            Address::Master(node) => Peer::Master(node),
            Address::Proxy => Peer::Proxy(PROXY),
        };
        match message.to {
            Address::Master(node) => {
                let Some(master) = self.running(node) else {
                    return; // crashed: the message is lost
                };
                master
                    .step(from, message.message)
                    .expect("routable message");
                self.drain_master(node);
            }
            Address::Proxy => {
                let Peer::Master(node) = from else {
                    return;
                };
                self.proxy
                    .step(CLUSTER, node, message.message)
                    .expect("routable message");
                self.drain_proxy();
            }
        }
    }

    /// Delivers until nothing deliverable is in flight (bounded).
    pub fn stabilize(&mut self, filter: &Filter) {
        for _ in 0..10_000 {
            if self.deliver(filter) == 0 {
                return;
            }
        }
        panic!("the network did not stabilize within 10000 rounds");
    }

    /// Drops every in-flight message matching `filter`, printing each.
    pub fn drop_messages(&mut self, filter: &Filter) {
        let network = std::mem::take(&mut self.network);
        for message in network {
            if filter.matches(&message) {
                let _ = writeln!(self.output, "dropped {message}");
            } else {
                self.network.push(message);
            }
        }
    }

    /// Freezes a running master.
    pub fn pause(&mut self, node: NodeId) {
        if !matches!(self.hosts.get(&node), Some(Host::Up(_))) {
            return;
        }
        if let Some(Host::Up(master)) = self.hosts.remove(&node) {
            self.hosts.insert(
                node,
                Host::Paused {
                    master,
                    overdue_ticks: 0,
                },
            );
        }
    }

    /// Thaws a paused master: its overdue ticks fire first (§7.2), through `Master::elapse`.
    pub fn resume(&mut self, node: NodeId) {
        if !matches!(self.hosts.get(&node), Some(Host::Paused { .. })) {
            return;
        }
        let Some(Host::Paused {
            master,
            overdue_ticks,
        }) = self.hosts.remove(&node)
        else {
            return;
        };
        self.hosts.insert(node, Host::Up(master));
        // As the hosts do: the ticks that fell due meanwhile, a pause from the threshold on.
        self.running(node).expect("resumed").elapse(overdue_ticks);
        self.drain_master(node);
    }

    /// Crashes a master: its volatile state is lost, in-flight messages to it will be lost.
    pub fn crash(&mut self, node: NodeId) {
        self.hosts.insert(node, Host::Down);
        // What waited for a stalled disk was never written, nor sent.
        self.disk_stalled.remove(&node);
        let _ = writeln!(self.output, "m{node} crashed");
    }

    /// Restarts a crashed master from its storage (§8).
    pub fn restart(&mut self, node: NodeId) {
        if !matches!(self.hosts.get(&node), Some(Host::Down)) {
            return;
        }
        let durable = self.storage[&node].clone();
        let mut master = Master::new(node, self.config.clone(), durable).expect("valid config");
        master.set_tracing(true);
        self.hosts.insert(node, Host::Up(Box::new(master)));
        self.drain_master(node);
    }

    /// A client request to the proxy.
    pub fn request(
        &mut self,
        client: ClientId,
        request_id: u64,
        cluster: &str,
        operation: Operation,
    ) {
        self.proxy
            .handle_request(client, request_id, cluster, operation);
        self.drain_proxy();
    }

    /// A client's revisioned request to the proxy.
    pub fn kv_request(
        &mut self,
        client: ClientId,
        request_id: u64,
        cluster: &str,
        operation: KvOperation,
    ) {
        self.proxy
            .handle_kv_request(client, request_id, cluster, operation);
        self.drain_proxy();
    }

    /// A client's watch request (`WatchCreate`, `WatchCancel`, `WatchProgressRequest`,
    /// `ClientClosed`) to the proxy.
    pub fn watch_input(&mut self, client: ClientId, message: Message) {
        match message {
            Message::WatchCreate {
                watch_id,
                cluster,
                watch,
            } => self
                .proxy
                .handle_watch_create(client, watch_id, &cluster, watch),
            Message::WatchCancel { watch_id } => self.proxy.handle_watch_cancel(client, watch_id),
            Message::WatchProgressRequest { watch_id } => {
                self.proxy.handle_watch_progress_request(client, watch_id)
            }
            Message::ClientClosed => self.proxy.handle_client_closed(client),
            other => panic!("not a client's watch message: {other}"),
        }
        self.drain_proxy();
    }

    /// The proxy's host saw its connection to `node` close (`ConnectionClosed`); the master's
    /// host saw its connection to the proxy close.
    pub fn link_closed(&mut self, node: NodeId) {
        let _ = writeln!(self.output, "p{PROXY} link to m{node} closed");
        self.proxy.link_closed(CLUSTER, node);
        self.drain_proxy();
        if let Some(master) = self.running(node) {
            master.proxy_closed(PROXY);
        }
        self.network
            .retain(|message| !is_subscription_message_between(message, node));
    }

    /// Takes the printed output.
    pub fn take_output(&mut self) -> String {
        std::mem::take(&mut self.output)
    }

    /// One status line per master, then the proxy's ledger.
    pub fn status(&self) -> String {
        let mut out = String::new();
        for (node, host) in &self.hosts {
            let master = match host {
                Host::Up(master) => master,
                Host::Paused { master, .. } => {
                    let _ = write!(out, "(paused) ");
                    master
                }
                Host::Down => {
                    let _ = writeln!(out, "m{node} down");
                    continue;
                }
            };
            let status = master.status();
            let leader = status
                .leader
                .map_or("none".to_string(), |ballot| ballot.to_string());
            let _ = writeln!(
                out,
                "m{node} {} promised={} leader={leader} commit={} last={} snapshot={} active={:?} evicted={:?} evictions={} rejoins={}",
                status.role,
                status.promised,
                status.commit_index,
                status.last_slot,
                status.snapshot_slot,
                status.active,
                status.evicted,
                status.counters.evictions,
                status.counters.rejoins,
            );
        }
        let ledger = self.proxy.ledger();
        let _ = writeln!(
            out,
            "p{PROXY} accepted={} completed_ok={} completed_err={} in_flight={} late_replies={} dropped_unanswered={}",
            ledger.accepted,
            ledger.completed_ok,
            ledger.completed_err,
            ledger.in_flight,
            ledger.late_replies,
            ledger.dropped_unanswered
        );
        out
    }
}
