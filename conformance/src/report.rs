//! The divergence report: what a CI log shows when the implementation did something the model
//! cannot do. Plain text, one fact per line, the first divergence only.

use std::fmt;

use vigil_model::{Action, Config, State};

/// Merged events shown before the divergent one.
pub const CONTEXT_EVENTS: usize = 20;
/// Enabled actions listed at most.
pub const ENABLED_SHOWN_MAX: usize = 40;

/// One field of a post-state that differs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldDiff {
    /// The field's name.
    pub field: &'static str,
    /// What the model has.
    pub expected: String,
    /// What the implementation reported.
    pub observed: String,
}

/// The first step of a trace the model does not follow.
#[derive(Clone, Debug)]
pub struct Divergence {
    /// One line: what went wrong (`post-state differs`, `action not enabled`, ...).
    pub title: String,
    /// The merged event index, if the divergence is at an event.
    pub event_index: Option<usize>,
    /// The event, printed.
    pub event: Option<String>,
    /// The model action being checked, if any.
    pub action: Option<String>,
    /// Field-by-field differences (post-state or messages).
    pub diff: Vec<FieldDiff>,
    /// Free-form facts (sent messages, properties, requests).
    pub notes: Vec<String>,
    /// The last merged events up to the divergent one.
    pub context: Vec<String>,
    /// The model state (before a step that is not enabled; after the input's actions for a
    /// post-state or message difference), printed.
    pub model_state: String,
    /// The actions the model could have taken instead.
    pub enabled: Vec<String>,
    /// The model actions replayed so far (a path `vigil-model` can replay from the initial state).
    pub path: Vec<Action>,
    /// The model's parameters the path runs in.
    pub config: Option<Config>,
}

impl Divergence {
    /// A divergence with only a title.
    pub fn new(title: impl Into<String>) -> Divergence {
        Divergence {
            title: title.into(),
            event_index: None,
            event: None,
            action: None,
            diff: Vec::new(),
            notes: Vec::new(),
            context: Vec::new(),
            model_state: String::new(),
            enabled: Vec::new(),
            path: Vec::new(),
            config: None,
        }
    }

    /// The model path (config and actions) as JSON: replaying `actions` from the initial state
    /// of `config` with `vigil_model::check::replay` reaches the state of the report.
    pub fn path_json(&self) -> String {
        serde_json::to_string_pretty(&serde_json::json!({
            "config": self.config,
            "actions": self.path,
        }))
        .unwrap_or_default()
    }
}

impl fmt::Display for Divergence {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.event_index {
            Some(index) => writeln!(
                formatter,
                "DIVERGENCE at merged event #{index}: {}",
                self.title
            )?,
            None => writeln!(formatter, "DIVERGENCE: {}", self.title)?,
        }
        if let Some(event) = &self.event {
            writeln!(formatter, "  event:  {event}")?;
        }
        if let Some(action) = &self.action {
            writeln!(formatter, "  action: {action}")?;
        }
        self.write_diff(formatter)?;
        for note in &self.notes {
            writeln!(formatter, "  {note}")?;
        }
        if !self.context.is_empty() {
            writeln!(
                formatter,
                "  context (last {} merged events):",
                self.context.len()
            )?;
            for line in &self.context {
                writeln!(formatter, "    {line}")?;
            }
        }
        if !self.model_state.is_empty() {
            writeln!(formatter, "  model state:")?;
            for line in self.model_state.lines() {
                writeln!(formatter, "    {line}")?;
            }
        }
        self.write_enabled(formatter)?;
        writeln!(
            formatter,
            "  model path: {} actions replayed before this step",
            self.path.len()
        )
    }
}

impl Divergence {
    /// The post-state difference as a table, field by field.
    fn write_diff(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.diff.is_empty() {
            return Ok(());
        }
        let width = self
            .diff
            .iter()
            .map(|diff| diff.field.len())
            .max()
            .unwrap_or(5)
            .max(5);
        writeln!(
            formatter,
            "  {:<width$}  {:<36}  observed (implementation)",
            "field", "expected (model)"
        )?;
        for diff in &self.diff {
            writeln!(
                formatter,
                "  {:<width$}  {:<36}  {}",
                diff.field, diff.expected, diff.observed
            )?;
        }
        Ok(())
    }

    /// The actions the model could have taken, at most [`ENABLED_SHOWN_MAX`] of them.
    fn write_enabled(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.enabled.is_empty() {
            return Ok(());
        }
        writeln!(
            formatter,
            "  enabled model actions ({}):",
            self.enabled.len()
        )?;
        for action in self.enabled.iter().take(ENABLED_SHOWN_MAX) {
            writeln!(formatter, "    {action}")?;
        }
        if self.enabled.len() > ENABLED_SHOWN_MAX {
            writeln!(
                formatter,
                "    ... {} more",
                self.enabled.len() - ENABLED_SHOWN_MAX
            )?;
        }
        Ok(())
    }
}

/// The model state as a few readable lines (masters, proxy, clients, messages in flight).
pub fn describe_state(state: &State) -> String {
    use vigil_model::state::Role;
    let mut lines = Vec::new();
    for (node, master) in state.masters.iter().enumerate() {
        let role = match &master.role {
            Role::Follower => "Follower".to_string(),
            Role::PreCandidate { ballot, grants } => format!(
                "PreCandidate {ballot} grants={:?}",
                grants.iter().collect::<Vec<_>>()
            ),
            Role::Candidate {
                ballot, promises, ..
            } => format!(
                "Candidate {ballot} promises={:?}",
                promises.iter().collect::<Vec<_>>()
            ),
            Role::Leader(leader) => format!(
                "Leader {} active={:?} evicted={:?} missed={:?} uncommitted={:?}",
                leader.ballot,
                leader.active.iter().collect::<Vec<_>>(),
                leader.evicted.iter().collect::<Vec<_>>(),
                leader.missed_heartbeats,
                leader.accepted_by.keys().collect::<Vec<_>>()
            ),
        };
        let leader = master
            .leader
            .map_or("none".to_string(), |ballot| ballot.to_string());
        lines.push(format!(
            "m{node}: {role} promised={} leader={leader} commit={} last_slot={} log={} heard={}{}{}",
            master.promised,
            master.commit_index,
            master.last_slot(),
            master.log.len(),
            master.heard_from_leader,
            if master.paused { " PAUSED" } else { "" },
            if master.crashed { " CRASHED" } else { "" },
        ));
    }
    let ledger = state.proxy.ledger;
    lines.push(format!(
        "proxy: cache={:?} pending={:?} accepted={} ok={} err={} in_flight={} late={}",
        state.proxy.leader_cache,
        state.proxy.pending.keys().collect::<Vec<_>>(),
        ledger.accepted,
        ledger.completed_ok,
        ledger.completed_err,
        ledger.in_flight,
        ledger.late_replies
    ));
    for ((source, destination), messages) in &state.network {
        let shown: Vec<String> = messages
            .iter()
            .take(4)
            .map(|message| format!("{message:?}"))
            .collect();
        let more = if messages.len() > 4 {
            format!(" ... {} more", messages.len() - 4)
        } else {
            String::new()
        };
        lines.push(format!(
            "in flight {source} -> {destination}: {}{more}",
            shown.join(", ")
        ));
    }
    lines.join("\n")
}
