//! The checks on a finished nemesis run and the report they produce: what was injected, how
//! many operations ran, and every promise with its verdict.

use std::fmt;
use std::time::{Duration, Instant};

use vigil_core::{LedgerCounters, WatchLedgerCounters};

use super::accounts::{BankRecord, PrefixHistory, WatcherLog};
use super::bank::BankSettings;
use super::bank_check::{self, BankVerdict};
use super::history::{self, HistoryCounts, KeyDurability, Record};
use super::watch_check::{self, WatchVerdict};
use super::NemesisOptions;
use crate::linearizability::{self, Verdict};
use crate::{check, replay, trace};

/// One fault the nemesis injected.
#[derive(Clone, Debug)]
pub struct FaultRecord {
    /// `sigstop-follower`, `sigstop-leader`, `sigkill-restart`, `isolate-leader`,
    /// `wrong-cluster-flood`.
    pub kind: String,
    /// The master it hit (5 for the proxy).
    pub node: usize,
    /// When it started, seconds since the run started.
    pub at_seconds: f64,
    /// How long it lasted, seconds.
    pub lasted_seconds: f64,
    /// What the cluster did meanwhile (eviction, election, rejoin, RSS).
    pub observed: String,
}

impl fmt::Display for FaultRecord {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = if self.node < 5 {
            format!("m{}", self.node)
        } else {
            "p1".to_string()
        };
        write!(
            formatter,
            "{:7.1} s  {:<20} {target:<3} {:5.1} s  {}",
            self.at_seconds, self.kind, self.lasted_seconds, self.observed
        )
    }
}

/// One wrong-cluster flood.
#[derive(Clone, Debug)]
pub struct FloodRecord {
    /// Requests sent.
    pub sent: u64,
    /// Answered `UnknownCluster`.
    pub refused: u64,
    /// Why a flood connection stopped early, if one did.
    pub error: Option<String>,
    /// A fault of the schedule (RSS checked); false for the warm-up flood.
    pub measured: bool,
    /// Proxy RSS before, bytes.
    pub rss_before_bytes: u64,
    /// Proxy RSS after, bytes.
    pub rss_after_bytes: u64,
}

/// What [`after`] says of an effect that never came; a fault with it is an anomaly.
const NOT_OBSERVED: &str = "NOT within the deadline";

/// "after 0.42 s" or "NOT within the deadline".
pub fn after(took: Option<Duration>) -> String {
    match took {
        Some(took) => format!("after {:.2} s", took.as_secs_f64()),
        None => NOT_OBSERVED.to_string(),
    }
}

/// Bytes as MiB.
pub fn mebibytes(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// What the run left for the checks.
pub struct RunFacts {
    /// The options it ran with.
    pub options: NemesisOptions,
    /// The keys.
    pub keys: Vec<Vec<u8>>,
    /// The clients' operations.
    pub records: Vec<Record>,
    /// The reads after the heal.
    pub final_reads: Vec<Record>,
    /// The proxy's ledger at the end (none: `/status` never answered).
    pub ledger: Option<LedgerCounters>,
    /// The proxy's watch ledger at the end.
    pub watch_ledger: Option<WatchLedgerCounters>,
    /// What the transaction clients and watchers did (none: the run had none).
    pub revisioned: Option<RevisionedFacts>,
    /// Faults injected.
    pub faults: Vec<FaultRecord>,
    /// Floods measured.
    pub floods: Vec<FloodRecord>,
    /// SIGSTOPs sent.
    pub pauses: u64,
    /// Processes that had exited before the end without the nemesis killing them.
    pub unexpected_exits: Vec<String>,
    /// Processes that did not stop on SIGTERM within the grace time.
    pub forced_stops: Vec<String>,
    /// Wall time from start to the end of the run, seconds.
    pub schedule_seconds: f64,
}

/// What the transaction clients and the watchers left for the checks.
pub struct RevisionedFacts {
    /// The accounts.
    pub bank: BankSettings,
    /// The transaction clients' operations.
    pub records: Vec<BankRecord>,
    /// The accounts' committed history read back after the heal, or why it could not be.
    pub history: Result<PrefixHistory, String>,
    /// What each watcher received.
    pub watchers: Vec<WatcherLog>,
}

/// The verdicts on the transaction clients and the watchers.
#[derive(Debug)]
pub struct RevisionedFindings {
    /// The accounts' history: its revisions that changed them and its final revision, or why it
    /// could not be read (then nothing else was checked).
    pub history: Result<(usize, u64), String>,
    /// Money conserved, transfers and reads linearizable by revision.
    pub bank: BankVerdict,
    /// Every watcher saw the committed history.
    pub watch: WatchVerdict,
    /// Seconds the two checks took.
    pub check_seconds: f64,
}

impl RevisionedFindings {
    fn of(facts: RevisionedFacts) -> RevisionedFindings {
        let started = Instant::now();
        let (bank, watch) = match &facts.history {
            Ok(history) => (
                bank_check::check(&facts.bank, history, &facts.records),
                watch_check::check(history, &facts.watchers),
            ),
            Err(_) => (BankVerdict::default(), WatchVerdict::default()),
        };
        RevisionedFindings {
            history: facts
                .history
                .map(|history| (history.states.len(), history.final_revision)),
            bank,
            watch,
            check_seconds: started.elapsed().as_secs_f64(),
        }
    }

    fn anomalies(&self, anomalies: &mut Vec<String>) {
        if let Err(error) = &self.history {
            anomalies.push(format!("accounts' history: {error}"));
        }
        for anomaly in &self.bank.anomalies {
            anomalies.push(format!("transactions: {anomaly}"));
        }
        for anomaly in &self.watch.anomalies {
            anomalies.push(format!("watchers: {anomaly}"));
        }
    }
}

impl fmt::Display for RevisionedFindings {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bank = &self.bank.summary;
        writeln!(
            formatter,
            "transactions: {} transfers ({} succeeded, {} failure branch, {} indeterminate of which {} applied, {} refused), {} reads",
            bank.committed + bank.refused + bank.unknown,
            bank.committed,
            bank.refused,
            bank.unknown,
            bank.unknown_applied,
            bank.failed,
            bank.reads
        )?;
        match &self.history {
            Ok((changes, final_revision)) => writeln!(
                formatter,
                "accounts' history: {changes} revisions changed them, final revision {final_revision}; money conserved and linearizable by revision: {} ({:.2} s)",
                verdict_word(self.bank.anomalies.len()),
                self.check_seconds
            )?,
            Err(error) => writeln!(formatter, "accounts' history: not read: {error}")?,
        }
        let watch = &self.watch.summary;
        let ends = if watch.ends.is_empty() {
            String::new()
        } else {
            format!("; re-opened after: {}", watch.ends.join(", "))
        };
        writeln!(
            formatter,
            "watchers: {} watchers, {} watches, {} revisions delivered{ends}; each saw the committed history: {}",
            watch.watchers,
            watch.watches,
            watch.deliveries,
            verdict_word(self.watch.anomalies.len())
        )
    }
}

fn verdict_word(anomalies: usize) -> String {
    if anomalies == 0 {
        "PASS".to_string()
    } else {
        format!("FAIL ({anomalies})")
    }
}

/// A nemesis run's findings.
#[derive(Debug)]
pub struct NemesisReport {
    /// Faults injected, in order.
    pub faults: Vec<FaultRecord>,
    /// The clients' operations (final reads included) by outcome.
    pub counts: HistoryCounts,
    /// Per-key linearizability.
    pub linearizability: Verdict,
    /// Seconds the checker took.
    pub check_seconds: f64,
    /// Acknowledged writes after the heal, per key, or what was lost.
    pub durability: Result<Vec<KeyDurability>, history::DurabilityError>,
    /// `vigil-conform check` on the trace files: its summary line or its failure (`None`: not
    /// run, `check_traces` off).
    pub traces: Option<Result<String, String>>,
    /// The proxy's ledger at the end.
    pub ledger: Option<LedgerCounters>,
    /// The proxy's watch ledger at the end.
    pub watch_ledger: Option<WatchLedgerCounters>,
    /// The transaction clients' and watchers' verdicts (none: the run had none).
    pub revisioned: Option<RevisionedFindings>,
    /// Floods (the warm-up one included).
    pub floods: Vec<FloodRecord>,
    /// RSS growth over a flood that fails the run, bytes.
    pub rss_growth_max_bytes: u64,
    /// Processes that exited on their own, and ones that needed SIGKILL at the end.
    pub unexpected_exits: Vec<String>,
    /// Processes that ignored SIGTERM.
    pub forced_stops: Vec<String>,
    /// Wall time of the run, seconds.
    pub run_seconds: f64,
}

/// Runs every check on `facts`.
pub fn check(facts: RunFacts) -> NemesisReport {
    let mut all = facts.records;
    all.extend(facts.final_reads.iter().cloned());
    let started = Instant::now();
    let linearizability = linearizability::check(&all, facts.options.check_limit);
    let check_seconds = started.elapsed().as_secs_f64();
    let durability = history::check_durability(&facts.keys, &all, &facts.final_reads);
    let traces = facts
        .options
        .check_traces
        .then(|| check_trace_files(&facts.options.directory.join("traces"), facts.pauses));
    NemesisReport {
        faults: facts.faults,
        counts: history::count(&all),
        linearizability,
        check_seconds,
        durability,
        traces,
        ledger: facts.ledger,
        watch_ledger: facts.watch_ledger,
        revisioned: facts.revisioned.map(RevisionedFindings::of),
        floods: facts.floods,
        rss_growth_max_bytes: facts.options.rss_growth_max_bytes,
        unexpected_exits: facts.unexpected_exits,
        forced_stops: facts.forced_stops,
        run_seconds: facts.schedule_seconds,
    }
}

/// `vigil-conform check` on the run's trace files: its summary, or its failure. Each SIGSTOP
/// lasts several pause thresholds, so the masters must have traced at least as many `Pause`s
/// as `sigstops` (a pause nobody noticed would leave the check vacuous about pauses).
fn check_trace_files(directory: &std::path::Path, sigstops: u64) -> Result<String, String> {
    let trace_started = Instant::now();
    trace::read_paths(&[directory.to_path_buf()])
        .map_err(|error| error.to_string())
        .and_then(|traces| {
            check::check_traces(&traces, trace::EVENTS_FLOOR_DEFAULT)
                .map_err(|failure| failure.to_string())
        })
        .and_then(|checked| {
            let traced = checked.coverage.behaviours.get("pause").copied().unwrap_or(0);
            if traced < sigstops {
                return Err(format!(
                    "{sigstops} SIGSTOP(s) sent, {traced} pause(s) traced: a master did not notice its pause"
                ));
            }
            Ok(checked)
        })
        .map(|checked| {
            let linearizable = match &checked.stats.linearizable_undecided_keys {
                Some(keys) => format!(
                    "; the model's `linearizable` UNKNOWN for keys {} (not decided within {} s)",
                    keys.join(", "),
                    replay::LINEARIZABLE_CHECK_LIMIT.as_secs()
                ),
                None => String::new(),
            };
            let stats = &checked.stats;
            format!(
                "{} events, {} model actions ({:.1} s: the replay's events {:.1} s, its linearizability checks {:.1} s){linearizable}",
                stats.events,
                stats.actions,
                trace_started.elapsed().as_secs_f64(),
                stats.seconds - stats.linearizable_seconds,
                stats.linearizable_seconds
            )
        })
}

impl NemesisReport {
    /// Every broken promise, one line each; empty when the run passed. An "unknown" from the
    /// linearizability checker is listed too: a run that proved nothing does not pass.
    pub fn anomalies(&self) -> Vec<String> {
        let mut anomalies = Vec::new();
        self.history_anomalies(&mut anomalies);
        if let Some(revisioned) = &self.revisioned {
            revisioned.anomalies(&mut anomalies);
        }
        self.ledger_anomalies(&mut anomalies);
        self.watch_ledger_anomalies(&mut anomalies);
        self.flood_anomalies(&mut anomalies);
        if !self.unexpected_exits.is_empty() {
            anomalies.push(format!(
                "processes exited on their own: {}",
                self.unexpected_exits.join(", ")
            ));
        }
        anomalies
    }

    /// The clients' history, durability, the trace check and the faults' observed effects.
    fn history_anomalies(&self, anomalies: &mut Vec<String>) {
        if self.linearizability != Verdict::Linearizable {
            anomalies.push(format!("history: {}", self.linearizability));
        }
        if let Err(error) = &self.durability {
            anomalies.push(format!("durability: {error}"));
        }
        if let Some(Err(error)) = &self.traces {
            // The first line; the whole report is printed under "trace check".
            let first = error.lines().next().unwrap_or_default();
            anomalies.push(format!("traces: {first}"));
        }
        for fault in &self.faults {
            if fault.observed.contains(NOT_OBSERVED) {
                anomalies.push(format!("a fault without its effect: {fault}"));
            }
        }
    }

    /// The proxy's ledger at the end: balanced, nothing in flight, nothing dropped unanswered.
    fn ledger_anomalies(&self, anomalies: &mut Vec<String>) {
        match &self.ledger {
            None => anomalies.push("ledger: the proxy's /status never answered".to_string()),
            Some(ledger) => {
                if !ledger.is_balanced() {
                    anomalies.push(format!(
                        "ledger: accepted != ok + err + in_flight: {ledger:?}"
                    ));
                }
                if ledger.in_flight != 0 || ledger.dropped_unanswered != 0 {
                    anomalies.push(format!(
                        "ledger: requests never answered at the end (in_flight {}, dropped_unanswered {}): {ledger:?}",
                        ledger.in_flight, ledger.dropped_unanswered
                    ));
                }
            }
        }
    }

    /// The proxy's watch ledger at the end: balanced, no watch open, none dropped unended.
    fn watch_ledger_anomalies(&self, anomalies: &mut Vec<String>) {
        let Some(watches) = &self.watch_ledger else {
            return;
        };
        if !watches.is_balanced() || watches.open != 0 || watches.dropped_unended != 0 {
            anomalies.push(format!(
                "watch ledger: not opened = ended with none open and none dropped unended: {watches:?}"
            ));
        }
    }

    /// Every wrong-cluster flood answered, and the proxy's memory bounded over each and all.
    fn flood_anomalies(&self, anomalies: &mut Vec<String>) {
        for flood in &self.floods {
            if flood.refused != flood.sent || flood.error.is_some() {
                anomalies.push(format!(
                    "flood: {} of {} wrong-cluster requests answered UnknownCluster ({})",
                    flood.refused,
                    flood.sent,
                    flood.error.as_deref().unwrap_or("no error")
                ));
            }
        }
        let measured: Vec<&FloodRecord> =
            self.floods.iter().filter(|flood| flood.measured).collect();
        for flood in &measured {
            let growth = flood.rss_after_bytes.saturating_sub(flood.rss_before_bytes);
            if growth > self.rss_growth_max_bytes {
                anomalies.push(format!(
                    "proxy memory: RSS grew {:.1} MiB over a flood of {} (limit {:.1} MiB)",
                    mebibytes(growth),
                    flood.sent,
                    mebibytes(self.rss_growth_max_bytes)
                ));
            }
        }
        if let (Some(first), Some(last)) = (measured.first(), measured.last()) {
            let growth = last.rss_after_bytes.saturating_sub(first.rss_before_bytes);
            if growth > self.rss_growth_max_bytes {
                let sent: u64 = measured.iter().map(|flood| flood.sent).sum();
                anomalies.push(format!(
                    "proxy memory: RSS grew {:.1} MiB over {} floods ({sent} requests; limit {:.1} MiB)",
                    mebibytes(growth),
                    measured.len(),
                    mebibytes(self.rss_growth_max_bytes)
                ));
            }
        }
        if measured.is_empty() {
            anomalies.push("flood: no measured wrong-cluster flood ran".to_string());
        }
    }

    /// Faults of `kind` injected.
    pub fn faults_of(&self, kind: &str) -> usize {
        self.faults
            .iter()
            .filter(|fault| fault.kind == kind)
            .count()
    }
}

impl fmt::Display for NemesisReport {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            formatter,
            "vigil-conform nemesis: {:.1} s",
            self.run_seconds
        )?;
        writeln!(formatter, "faults injected ({}):", self.faults.len())?;
        for fault in &self.faults {
            writeln!(formatter, "  {fault}")?;
        }
        let counts = &self.counts;
        writeln!(
            formatter,
            "operations: {} ({} ok, {} refused, {} indeterminate)",
            counts.operations, counts.ok, counts.failed, counts.unknown
        )?;
        writeln!(
            formatter,
            "linearizability (per key): {} ({:.2} s)",
            self.linearizability, self.check_seconds
        )?;
        match &self.durability {
            Ok(keys) => {
                let detail: Vec<String> = keys
                    .iter()
                    .map(|key| {
                        format!(
                            "{} final version {} >= acknowledged {} (<= {} possible)",
                            String::from_utf8_lossy(&key.key),
                            key.final_version,
                            key.acknowledged_version_max,
                            key.writes_possible
                        )
                    })
                    .collect();
                writeln!(
                    formatter,
                    "acknowledged writes after heal: present; {}",
                    detail.join("; ")
                )?;
            }
            Err(error) => writeln!(formatter, "acknowledged writes after heal: {error}")?,
        }
        if let Some(revisioned) = &self.revisioned {
            write!(formatter, "{revisioned}")?;
        }
        match &self.traces {
            Some(Ok(summary)) => writeln!(formatter, "trace check: PASS: {summary}")?,
            Some(Err(error)) => writeln!(formatter, "trace check: FAIL: {error}")?,
            None => writeln!(formatter, "trace check: not run (tracing off)")?,
        }
        match &self.ledger {
            Some(ledger) => writeln!(formatter, "proxy ledger at the end: {ledger:?}")?,
            None => writeln!(formatter, "proxy ledger at the end: unknown")?,
        }
        if let Some(watches) = &self.watch_ledger {
            writeln!(formatter, "proxy watch ledger at the end: {watches:?}")?;
        }
        if !self.forced_stops.is_empty() {
            writeln!(
                formatter,
                "needed SIGKILL at the end: {}",
                self.forced_stops.join(", ")
            )?;
        }
        let anomalies = self.anomalies();
        writeln!(formatter, "anomalies: {}", anomalies.len())?;
        for anomaly in anomalies {
            writeln!(formatter, "  {anomaly}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flood(refused: u64, rss_before_mib: u64, rss_after_mib: u64) -> FloodRecord {
        FloodRecord {
            sent: 1000,
            refused,
            error: None,
            measured: true,
            rss_before_bytes: rss_before_mib << 20,
            rss_after_bytes: rss_after_mib << 20,
        }
    }

    fn clean() -> NemesisReport {
        NemesisReport {
            faults: Vec::new(),
            counts: HistoryCounts::default(),
            linearizability: Verdict::Linearizable,
            check_seconds: 0.0,
            durability: Ok(Vec::new()),
            traces: None,
            ledger: Some(LedgerCounters {
                accepted: 10,
                completed_ok: 4,
                completed_err: 6,
                ..LedgerCounters::default()
            }),
            watch_ledger: Some(WatchLedgerCounters {
                opened: 3,
                ended: 3,
                ..WatchLedgerCounters::default()
            }),
            revisioned: None,
            floods: vec![flood(1000, 10, 10)],
            rss_growth_max_bytes: 3 << 20,
            unexpected_exits: Vec::new(),
            forced_stops: Vec::new(),
            run_seconds: 1.0,
        }
    }

    #[test]
    fn a_clean_run_has_no_anomaly() {
        assert_eq!(clean().anomalies(), Vec::<String>::new());
    }

    #[test]
    fn each_broken_promise_is_an_anomaly() {
        let mut report = clean();
        report.ledger = Some(LedgerCounters {
            accepted: 10,
            completed_ok: 4,
            completed_err: 4,
            in_flight: 2,
            ..LedgerCounters::default()
        });
        assert!(report.anomalies()[0].starts_with("ledger:"));

        let mut report = clean();
        report.floods = vec![flood(990, 10, 10)];
        assert!(report.anomalies()[0].starts_with("flood:"));

        let mut report = clean();
        report.floods = vec![flood(1000, 10, 12), flood(1000, 12, 14)];
        let anomalies = report.anomalies();
        assert_eq!(anomalies.len(), 1, "{anomalies:?}");
        assert!(anomalies[0].contains("over 2 floods"), "{anomalies:?}");

        let mut report = clean();
        report.floods.clear();
        assert!(report.anomalies()[0].contains("no measured"));

        let mut report = clean();
        report.faults.push(FaultRecord {
            kind: "sigstop-follower".into(),
            node: 1,
            at_seconds: 1.0,
            lasted_seconds: 1.0,
            observed: format!("evicted {}", after(None)),
        });
        assert!(report.anomalies()[0].starts_with("a fault without its effect"));

        let mut report = clean();
        report.watch_ledger = Some(WatchLedgerCounters {
            opened: 3,
            ended: 2,
            open: 1,
            ..WatchLedgerCounters::default()
        });
        assert!(report.anomalies()[0].starts_with("watch ledger:"));

        let mut report = clean();
        report.traces = Some(Err("DIVERGENCE".into()));
        assert!(report.anomalies()[0].starts_with("traces:"));
    }
}
