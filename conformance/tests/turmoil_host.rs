//! The turmoil run of the tokio host (`vigil_conformance::turmoil_host`): the same seed gives byte-identical traces
//! (and another seed does not), a run under faults conforms to the model (with the revisioned
//! clients, a crash resumes the watches elsewhere), and the simulated disk under the host's
//! real storage keeps what was synced and loses what was not.

use std::path::Path;
use std::sync::{Arc, Mutex};

use vigil::durable::MasterStorage;
use vigil::platform::FileSystem;
use vigil_conformance::faults::{FaultKind, FaultPlan, Runner};
use vigil_conformance::run;
use vigil_conformance::turmoil_host::{self, platform::SimFileSystem};
use vigil_core::{Ballot, Command, DurableWrite, Entry};

const MASTERS: u64 = 5;

fn plan(seed: u64) -> FaultPlan {
    let kinds = [FaultKind::Crash, FaultKind::Pause, FaultKind::WrongCluster];
    vigil_conformance::faults::plan_for_seed(&kinds, MASTERS, seed)
}

/// Three runs per seed in one process: state that outlives a run in the process (tokio's task
/// ids, which once set the order a crashed host's tasks were dropped in) shows up as a
/// difference between the first run and a later one.
#[test]
fn the_same_seed_gives_byte_identical_traces() {
    for seed in [1, 3, 11, 16] {
        let crashes = plan(seed).faults.iter().any(|f| f.kind == FaultKind::Crash);
        assert!(crashes, "seed {seed}'s plan crashes no master");
        let first = turmoil_host::run(seed, MASTERS, &plan(seed)).unwrap();
        assert_eq!(first.trace_bytes.len(), MASTERS as usize + 1);
        let events: usize = first.traces.iter().map(|trace| trace.events.len()).sum();
        assert!(events > 500, "seed {seed}: only {events} events");
        for repetition in 1..3 {
            let again = turmoil_host::run(seed, MASTERS, &plan(seed)).unwrap();
            for (node, (a, b)) in first.trace_bytes.iter().zip(&again.trace_bytes).enumerate() {
                assert!(
                    a == b,
                    "trace {node} of seed {seed} differs between run 0 and run {repetition}"
                );
            }
        }
    }
    let other = turmoil_host::run(4, MASTERS, &plan(3)).unwrap();
    let third = turmoil_host::run(3, MASTERS, &plan(3)).unwrap();
    assert_ne!(
        third.trace_bytes, other.trace_bytes,
        "seed 4 gave seed 3's traces: the seed does not reach the simulation"
    );
}

#[test]
fn a_run_under_crash_pause_and_flood_conforms() {
    let kinds = [FaultKind::Crash, FaultKind::Pause, FaultKind::WrongCluster];
    let outcome = run::run_and_check(Runner::Turmoil, 1, MASTERS, &kinds, None);
    let checked = outcome.result.unwrap_or_else(|failure| panic!("{failure}"));
    for behaviour in ["crash/restart", "pause", "eviction", "wrong cluster"] {
        assert!(
            checked
                .coverage
                .behaviours
                .get(behaviour)
                .copied()
                .unwrap_or(0)
                > 0,
            "{behaviour} never happened"
        );
    }
}

fn entry(slot: u64) -> Entry {
    Entry {
        slot,
        ballot: Ballot::new(1, 0),
        command: Command::Noop,
    }
}

#[test]
fn a_crash_keeps_synced_writes_and_loses_unsynced_ones() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut sim = turmoil::Builder::new().rng_seed(1).build();
    let observations = seen.clone();
    sim.host("disk", move || {
        let observations = observations.clone();
        async move {
            let directory = Path::new("/data");
            let mut storage = MasterStorage::open_on(SimFileSystem, directory)?;
            let unsynced = SimFileSystem.read(&directory.join("unsynced")).is_ok();
            let state = storage.state();
            observations
                .lock()
                .unwrap()
                .push((state.log.len(), state.promised, unsynced));
            if state.log.is_empty() {
                // First life: one write through the host's storage (fsynced), one file
                // written behind its back and never synced.
                let write = DurableWrite {
                    promised: Some(Ballot::new(1, 0)),
                    snapshot: None,
                    entries: vec![entry(1), entry(2)],
                };
                storage.persist(&write)?;
                let mut file = SimFileSystem.create(&directory.join("unsynced"))?;
                std::io::Write::write_all(&mut file, b"lost on a crash")?;
                let visible = SimFileSystem.read(&directory.join("unsynced"))?;
                assert_eq!(visible, b"lost on a crash");
            }
            std::future::pending::<()>().await;
            Ok(())
        }
    });
    sim.step().unwrap();
    sim.crash("disk");
    sim.bounce("disk");
    sim.step().unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            (0, Ballot::ZERO, false),
            // After the crash: the synced entries and promise are there, the unsynced file not.
            (2, Ballot::new(1, 0), false),
        ]
    );
}

/// On an even seed the revisioned clients run beside the register workload, through the
/// client library, and a crash aims at the master their watches stream from: the watches
/// resume at another master, and every revisioned behaviour shows up in one run.
#[test]
fn a_revisioned_run_under_a_crash_resumes_its_watches_and_conforms() {
    assert!(turmoil_host::revisioned_seed(12));
    let outcome = run::run_and_check(Runner::Turmoil, 12, MASTERS, &[FaultKind::Crash], None);
    let checked = outcome.result.unwrap_or_else(|failure| panic!("{failure}"));
    for behaviour in vigil_conformance::coverage::REVISIONED_BEHAVIOURS {
        let count = checked.coverage.behaviours.get(behaviour).copied();
        assert!(count.unwrap_or(0) > 0, "{behaviour} never happened");
    }
}
