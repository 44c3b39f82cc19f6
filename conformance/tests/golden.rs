//! Golden traces (`tests/traces/`): a valid trace recorded from the real tokio host on TCP must
//! pass; hand-broken copies of it (`make_broken.py`) must fail with their specific report.
//! Plus the determinism and non-vacuity checks of the simulation.

use std::path::PathBuf;

use vigil_conformance::check::{self, CheckFailure};
use vigil_conformance::faults::{FaultKind, Runner};
use vigil_conformance::run;
use vigil_conformance::{diagram, sim, trace};

fn traces(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/traces")
        .join(name)
}

fn check(name: &str) -> Result<check::Checked, CheckFailure> {
    check::check_paths(&[traces(name)], trace::EVENTS_FLOOR_DEFAULT)
}

fn failure(name: &str) -> String {
    match check(name) {
        Ok(_) => panic!("{name} passed, it must fail"),
        Err(failure) => failure.to_string(),
    }
}

#[test]
fn the_valid_tcp_trace_passes() {
    let checked = check("valid-tcp-quiet").unwrap_or_else(|failure| panic!("{failure}"));
    assert_eq!(checked.stats.events, 819);
    assert!(checked.stats.actions > 300);
    assert_eq!(checked.coverage.behaviours["election"], 1);
}

#[test]
fn a_wrong_ballot_is_a_divergence_in_the_messages_sent() {
    let report = failure("broken-wrong-ballot");
    assert!(report.contains("the messages sent differ"), "{report}");
    let line = report
        .lines()
        .find(|line| {
            line.contains("implementation sent, model did not: master 1 -> master 0 Accepted")
        })
        .unwrap_or_else(|| panic!("{report}"));
    assert!(line.contains('7'), "the round-7 ballot: {line}");
    assert!(
        report.contains("context (last 20 merged events)"),
        "{report}"
    );
    assert!(report.contains("enabled model actions"), "{report}");
}

#[test]
fn a_commit_without_quorum_is_a_post_state_divergence() {
    let report = failure("broken-commit-without-quorum");
    assert!(report.contains("the post-state differs"), "{report}");
    let event = report
        .lines()
        .find(|line| line.trim_start().starts_with("event:"))
        .expect("an event line");
    assert!(
        event.contains(" recv <-m") && event.contains("Accepted{ballot=1.0 slot=1}"),
        "{report}"
    );
    let row = report
        .lines()
        .find(|line| line.trim_start().starts_with("commit_index"))
        .expect("a commit_index row");
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        vec!["commit_index", "0", "1"],
        "{report}"
    );
}

#[test]
fn a_missing_completion_is_reported() {
    let report = failure("broken-missing-completion");
    assert!(
        report.contains("model sent, implementation did not: proxy -> client"),
        "{report}"
    );
    assert!(report.contains("Reply { request_id:"), "{report}");
}

/// A real TCP run with every fault (`run --mode tcp --seed 11 --seeds 1 --faults all`), its
/// `Heartbeat`s with their read round (`protocol.md` §9.2). A real TCP run is not reproducible,
/// so this one pins a restart and evictions only; the timers of one tick as one input are held
/// by every traced TCP and turmoil run (`docs/trace.md` §8).
#[test]
fn a_mixed_fault_tcp_trace_with_a_restart_passes() {
    let checked = check("valid-tcp-mixed-faults").unwrap_or_else(|failure| panic!("{failure}"));
    assert_eq!(checked.stats.events, 1944);
    assert!(checked.coverage.behaviours["crash/restart"] >= 1);
    assert!(checked.coverage.behaviours["eviction"] >= 1);
}

#[test]
fn a_reordered_receive_is_a_merge_error() {
    let report = failure("broken-reordered-receive");
    // m0 handles m2's Accepted before it sent the Accept it answers: a cycle, which the merge
    // reports as the chain of waiting events, starting at the reordered receive.
    assert!(
        report.contains("MERGE ERROR: no causal order: `m0#")
            && report.contains("recv <-m2 Accepted{ballot=1.0 slot=1}` (m0.ndjson:"),
        "{report}"
    );
    // The host stamps message ids: the receive names exactly the send it waits for.
    assert!(
        report.contains("(its send, message id m2.0.m0."),
        "{report}"
    );
    assert!(
        report.contains("recv <-m0 Accept{ballot=1.0 slot=1"),
        "{report}"
    );
}

#[test]
fn the_same_seed_gives_byte_identical_traces() {
    let plan = vigil_conformance::faults::plan_for_seed(&FaultKind::ALL, 5, 11);
    let render = |run: &sim::SimRun| -> Vec<String> {
        run.traces
            .iter()
            .map(|node| trace::render(&node.header, &node.events))
            .collect()
    };
    let first = render(&sim::run(11, 5, &plan));
    let second = render(&sim::run(11, 5, &plan));
    assert!(first.iter().map(String::len).sum::<usize>() > 10_000);
    assert_eq!(first, second);
    let other = render(&sim::run(12, 5, &plan));
    assert_ne!(first, other, "another seed, another run");
}

#[test]
fn a_trace_below_the_floor_is_vacuous() {
    let directory = tempfile::tempdir().unwrap();
    let valid = traces("valid-tcp-quiet");
    for entry in std::fs::read_dir(&valid).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let first_two: String = text
            .lines()
            .take(2)
            .map(|line| format!("{line}\n"))
            .collect();
        std::fs::write(directory.path().join(path.file_name().unwrap()), first_two).unwrap();
    }
    let Err(error) = check::check_paths(
        &[directory.path().to_path_buf()],
        trace::EVENTS_FLOOR_DEFAULT,
    ) else {
        panic!("6 events are below the floor");
    };
    assert!(
        error.to_string().contains("vacuous trace: 6 events"),
        "{error}"
    );
}

#[test]
fn headers_that_disagree_on_the_configuration_are_an_error_naming_fields_and_nodes() {
    let directory = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(traces("valid-tcp-quiet")).unwrap() {
        let path = entry.unwrap().path();
        let mut text = std::fs::read_to_string(&path).unwrap();
        if path.file_name().unwrap() == "m3.ndjson" {
            let header_end = text.find('\n').unwrap();
            let header = text[..header_end].replacen(
                "\"election_timeout_ticks\":",
                "\"election_timeout_ticks\":9",
                1,
            );
            assert_ne!(header, text[..header_end], "m3's header states the timeout");
            text.replace_range(..header_end, &header);
        }
        std::fs::write(directory.path().join(path.file_name().unwrap()), text).unwrap();
    }
    let Err(error) = check::check_paths(
        &[directory.path().to_path_buf()],
        trace::EVENTS_FLOOR_DEFAULT,
    ) else {
        panic!("m3 ran with another election timeout: the files are not one run");
    };
    let report = error.to_string();
    assert!(report.starts_with("HEADER ERROR"), "{report}");
    assert!(
        report.contains("config.election_timeout_ticks: "),
        "{report}"
    );
    assert!(
        report.contains(" at m3;") || report.ends_with(" at m3"),
        "{report}"
    );
    assert!(report.contains("at m0, m1, m2, m4, p1"), "{report}");
}

#[test]
fn a_fault_plan_whose_behaviours_never_happen_fails() {
    // The quiet trace has no eviction: judged against a plan that paused a master, it is vacuous.
    let checked = check("valid-tcp-quiet").unwrap_or_else(|failure| panic!("{failure}"));
    let missing = checked.coverage.missing(
        &[FaultKind::Pause, FaultKind::WrongCluster],
        Runner::CoreSimulation,
    );
    assert!(
        missing.iter().any(|line| line.starts_with("eviction")),
        "{missing:?}"
    );
    assert!(
        missing.iter().any(|line| line.starts_with("wrong cluster")),
        "{missing:?}"
    );
    assert!(checked
        .coverage
        .missing(&[], Runner::CoreSimulation)
        .is_empty());
}

#[test]
fn the_sequence_diagram_highlights_the_divergent_event() {
    let node_traces = trace::read_paths(&[traces("broken-commit-without-quorum")]).unwrap();
    let Err(CheckFailure::Divergence(divergence)) =
        check::check_traces(&node_traces, trace::EVENTS_FLOOR_DEFAULT)
    else {
        panic!("broken-commit-without-quorum must diverge");
    };
    let index = divergence
        .event_index
        .expect("the divergence is at an event");
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("divergence-check.html");
    diagram::write(&node_traces, &divergence, "check", &[], &path).unwrap();
    let html = std::fs::read_to_string(&path).unwrap();
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..roxmltree::ParsingOptions::default()
    };
    let document =
        roxmltree::Document::parse_with_options(&html, options).expect("well-formed XHTML");
    let has_class = |node: &roxmltree::Node<'_, '_>, class: &str| {
        node.attribute("class")
            .is_some_and(|classes| classes.split(' ').any(|name| name == class))
    };
    let events: Vec<_> = document
        .descendants()
        .filter(|node| has_class(node, "event"))
        .collect();
    assert_eq!(events.len(), (index + 1).min(diagram::WINDOW_EVENTS_MAX));
    let divergent: Vec<_> = events
        .iter()
        .filter(|node| has_class(node, "divergent"))
        .collect();
    assert_eq!(divergent.len(), 1, "exactly one highlighted event");
    assert_eq!(
        divergent[0].attribute("data-event"),
        Some(index.to_string().as_str())
    );
    assert_eq!(
        events.last().unwrap().attribute("data-event"),
        Some(index.to_string().as_str()),
        "the window ends at the divergence"
    );
    let title = divergent[0]
        .children()
        .find(|child| child.has_tag_name("title"))
        .and_then(|title| title.text())
        .unwrap_or_default();
    assert!(
        title.contains(" recv <-m") && title.contains("Accepted{ballot=1.0 slot=1}"),
        "{title}"
    );
    let cells: Vec<&str> = document
        .descendants()
        .filter(|node| node.has_tag_name("td"))
        .filter_map(|node| node.text())
        .collect();
    let row = cells
        .chunks(3)
        .find(|row| row[0] == "commit_index")
        .unwrap_or_else(|| panic!("{cells:?}"));
    assert_eq!(row, ["commit_index", "0", "1"]);
}

/// A leader paused from the pause threshold to below the election timeout traces `Pause` and
/// `Resume`, runs check-quorum first and steps down, evicting nobody — in the core's simulation
/// and in the tokio host's — and the model follows (`docs/protocol.md` §7.2, `docs/trace.md` §8).
#[test]
fn a_paused_leader_steps_down_on_resume_and_evicts_nobody() {
    let core = run::run_and_check(
        Runner::CoreSimulation,
        1,
        5,
        &[FaultKind::PauseLeader],
        None,
    );
    let host = run::run_and_check(Runner::Turmoil, 1, 5, &[FaultKind::PauseLeader], None);
    for (mode, result) in [("sim", core.result), ("turmoil", host.result)] {
        let checked = result.unwrap_or_else(|failure| panic!("{mode}: {failure}"));
        let behaviours = &checked.coverage.behaviours;
        assert_eq!(behaviours["pause"], 1, "{mode}: {behaviours:?}");
        assert_eq!(behaviours["resume step-down"], 1, "{mode}: {behaviours:?}");
        assert_eq!(behaviours["eviction"], 0, "{mode}: {behaviours:?}");
        assert_eq!(checked.stats.action_kinds["Resume"], 1, "{mode}");
    }
}
