//! The counterexample as a sequence diagram: on a divergence, `vigil-conform` writes a
//! self-contained HTML file (inline SVG, no script, no external asset, no network) that a
//! reviewer opens in any browser to see what the nodes did before the model and the
//! implementation parted ways.
//!
//! One lifeline per node (masters, the proxy, and one lane for the untraced clients), the merged
//! events down the page in merged order, an arrow from each `Send` to the `Receive` the merge
//! linked to it (by message id, or by content for traces without ids), marks on the lifelines for
//! timeouts, evictions, readmissions, role changes, restarts (a restart after the node's first
//! event is a crash and a restart) and the injected faults the run reports, and the divergent
//! event highlighted in red next to the report's diff. Only the last [`WINDOW_EVENTS_MAX`] merged
//! events up to the divergence are drawn, so the file stays small (about 150 KB at most).
//!
//! Every text that comes from a trace is escaped ([`escape`]); the document is well-formed XML
//! (XHTML syntax), which the tests check with a parser.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use vigil_core::{Endpoint, Origin, TraceKind};

use crate::merge::{self, Merged, MergedEvent};
use crate::report::Divergence;
use crate::trace::NodeTrace;

/// Merged events drawn at most: the ones up to and including the divergent event.
pub const WINDOW_EVENTS_MAX: usize = 200;
/// Notes of the report shown under the diff at most.
const NOTES_SHOWN_MAX: usize = 12;
/// Characters of an event's text shown in the log column (the full text is its tooltip).
const LOG_TEXT_CHARS_MAX: usize = 72;

const ROW_HEIGHT_PX: usize = 22;
const HEADER_HEIGHT_PX: usize = 48;
const LOG_WIDTH_PX: usize = 560;
const LANE_SPACING_PX: usize = 130;
const STUB_LENGTH_PX: usize = 44;

/// Why a diagram could not be written.
#[derive(Debug, thiserror::Error)]
pub enum DiagramError {
    /// The traces do not merge (then the failure is not a divergence: no diagram).
    #[error("merging the traces for the diagram: {0}")]
    Merge(#[from] merge::MergeError),
    /// The divergence names an event the merged traces do not have.
    #[error("the divergence is at merged event #{index}, the merged traces have {events} events")]
    EventOutOfRange {
        /// The divergence's event.
        index: usize,
        /// Merged events.
        events: usize,
    },
    /// The file could not be written.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// What a diagram shows besides the merged events.
pub struct DiagramInput<'a> {
    /// The run, as the report names it (e.g. `sim-seed-3`).
    pub label: &'a str,
    /// The merged traces the divergence was found in.
    pub merged: &'a Merged,
    /// The divergence.
    pub divergence: &'a Divergence,
    /// The faults the run injected, as it printed them.
    pub faults: &'a [String],
}

/// Merges `traces` (the merge is deterministic: the order the replay saw) and writes the
/// diagram of `divergence` to `path`.
pub fn write(
    traces: &[NodeTrace],
    divergence: &Divergence,
    label: &str,
    faults: &[String],
    path: &Path,
) -> Result<(), DiagramError> {
    let merged = merge::merge(traces)?;
    let html = render(&DiagramInput {
        label,
        merged: &merged,
        divergence,
        faults,
    })?;
    let io = |source| DiagramError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(directory) = path.parent() {
        std::fs::create_dir_all(directory).map_err(io)?;
    }
    std::fs::write(path, html).map_err(io)
}

/// Escapes text for XML and HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            // Control characters are not allowed in XML 1.0.
            character if character.is_control() && character != '\n' && character != '\t' => {
                escaped.push('\u{fffd}')
            }
            character => escaped.push(character),
        }
    }
    escaped
}

/// The merged events drawn: `first..=last`, and the divergent one if the divergence is at an
/// event (a divergence at the end of the trace has none: the last events are drawn).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Window {
    first: usize,
    last: usize,
    divergent: Option<usize>,
}

impl Window {
    fn of(merged: &Merged, divergence: &Divergence) -> Result<Option<Window>, DiagramError> {
        let events = merged.events.len();
        let last = match divergence.event_index {
            Some(index) if index >= events => {
                return Err(DiagramError::EventOutOfRange { index, events })
            }
            Some(index) => index,
            None if events == 0 => return Ok(None),
            None => events - 1,
        };
        Ok(Some(Window {
            first: (last + 1).saturating_sub(WINDOW_EVENTS_MAX),
            last,
            divergent: divergence.event_index,
        }))
    }

    fn contains(&self, index: usize) -> bool {
        (self.first..=self.last).contains(&index)
    }

    /// The vertical centre of a merged event's row.
    fn y(&self, index: usize) -> usize {
        HEADER_HEIGHT_PX + (index - self.first) * ROW_HEIGHT_PX + ROW_HEIGHT_PX / 2
    }

    fn height(&self) -> usize {
        HEADER_HEIGHT_PX + (self.last - self.first + 1) * ROW_HEIGHT_PX + ROW_HEIGHT_PX
    }
}

/// A lifeline. A run has one proxy (the host numbers proxy connections: every proxy id a master
/// sees is it), and clients are untraced: one lane for all of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Lane {
    Master(u64),
    Proxy,
    Clients,
}

impl Lane {
    fn of_origin(origin: Origin) -> Lane {
        match origin {
            Origin::Master(node) => Lane::Master(node),
            Origin::Proxy(_) => Lane::Proxy,
        }
    }

    fn of_endpoint(endpoint: &Endpoint) -> Lane {
        match endpoint {
            Endpoint::Master { node, .. } => Lane::Master(*node),
            Endpoint::Proxy(_) => Lane::Proxy,
            Endpoint::Client(_) => Lane::Clients,
        }
    }

    fn name(&self) -> String {
        match self {
            Lane::Master(node) => format!("m{node}"),
            Lane::Proxy => "proxy".to_string(),
            Lane::Clients => "clients (untraced)".to_string(),
        }
    }
}

/// The lifelines and their x positions.
struct Lanes {
    x: BTreeMap<Lane, usize>,
}

impl Lanes {
    fn of(merged: &Merged, window: &Window) -> Lanes {
        let mut lanes: BTreeMap<Lane, usize> = BTreeMap::new();
        for event in &merged.events {
            lanes.insert(Lane::of_origin(event.line.origin), 0);
        }
        for event in &merged.events[window.first..=window.last] {
            if let TraceKind::Send { to: endpoint, .. }
            | TraceKind::Receive { from: endpoint, .. } = &event.line.kind
            {
                lanes.insert(Lane::of_endpoint(endpoint), 0);
            }
        }
        for (position, x) in lanes.values_mut().enumerate() {
            *x = LOG_WIDTH_PX + LANE_SPACING_PX / 2 + position * LANE_SPACING_PX;
        }
        Lanes { x: lanes }
    }

    fn x(&self, lane: Lane) -> usize {
        self.x[&lane]
    }

    fn width(&self) -> usize {
        LOG_WIDTH_PX + self.x.len() * LANE_SPACING_PX + LANE_SPACING_PX
    }
}

/// Renders the diagram of `input` as one HTML document.
pub fn render(input: &DiagramInput<'_>) -> Result<String, DiagramError> {
    let mut html = String::new();
    let title = format!("vigil-conform divergence: {}", input.label);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n\
         <meta charset=\"utf-8\"/>\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(&title)
    );
    let _ = writeln!(html, "<h1>{}</h1>", escape(&title));
    summary(&mut html, input);
    match Window::of(input.merged, input.divergence)? {
        Some(window) => {
            let _ = writeln!(
                html,
                "<p>Merged events #{}..#{} of {} (the last {} up to the divergence; \
                 hover over an event or an arrow for its full text).</p>",
                window.first,
                window.last,
                input.merged.events.len(),
                window.last - window.first + 1
            );
            legend(&mut html);
            svg(&mut html, input.merged, &window);
        }
        None => html.push_str("<p>The merged traces have no event.</p>\n"),
    }
    html.push_str("</body>\n</html>\n");
    Ok(html)
}

const STYLE: &str = "body{font-family:sans-serif;margin:1em;color:#222}\
h1{font-size:1.2em}table{border-collapse:collapse;margin:.5em 0}\
td,th{border:1px solid #bbb;padding:2px 6px;font-family:monospace;text-align:left}\
.divergence{border:2px solid #c00;background:#fee;padding:.5em}\
.divergence h2{color:#c00;font-size:1.1em;margin:0 0 .3em 0}\
pre{margin:.2em 0;white-space:pre-wrap}.legend span{margin-right:1.2em}\
svg text{font-family:monospace;font-size:11px}";

/// The report's facts above the drawing: title, event, action, diff, notes, faults.
fn summary(html: &mut String, input: &DiagramInput<'_>) {
    let divergence = input.divergence;
    html.push_str("<div class=\"divergence\" id=\"divergence\">\n");
    let at = divergence
        .event_index
        .map_or(String::new(), |index| format!(" at merged event #{index}"));
    let _ = writeln!(
        html,
        "<h2>DIVERGENCE{}: {}</h2>",
        escape(&at),
        escape(&divergence.title)
    );
    if let Some(event) = &divergence.event {
        let _ = writeln!(html, "<pre>event:  {}</pre>", escape(event));
    }
    if let Some(action) = &divergence.action {
        let _ = writeln!(html, "<pre>action: {}</pre>", escape(action));
    }
    diff_table(html, divergence);
    for note in divergence.notes.iter().take(NOTES_SHOWN_MAX) {
        let _ = writeln!(html, "<pre>{}</pre>", escape(note));
    }
    if divergence.notes.len() > NOTES_SHOWN_MAX {
        let _ = writeln!(
            html,
            "<pre>... {} more notes (in the text report)</pre>",
            divergence.notes.len() - NOTES_SHOWN_MAX
        );
    }
    let _ = writeln!(
        html,
        "<pre>model path: {} actions replayed before this step (saved as JSON next to this file)</pre>",
        divergence.path.len()
    );
    html.push_str("</div>\n");
    if !input.faults.is_empty() {
        html.push_str("<p>Faults the run injected:</p>\n<ul>\n");
        for fault in input.faults {
            let _ = writeln!(html, "<li>{}</li>", escape(fault));
        }
        html.push_str("</ul>\n");
    }
}

fn diff_table(html: &mut String, divergence: &Divergence) {
    if divergence.diff.is_empty() {
        return;
    }
    html.push_str(
        "<table class=\"diff\">\n<tr><th>field</th><th>expected (model)</th>\
         <th>observed (implementation)</th></tr>\n",
    );
    for diff in &divergence.diff {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(diff.field),
            escape(&diff.expected),
            escape(&diff.observed)
        );
    }
    html.push_str("</table>\n");
}

fn legend(html: &mut String) {
    html.push_str(
        "<p class=\"legend\"><span>→ message (send to receive)</span>\
         <span>⇢ dashed: not received in the window</span>\
         <span style=\"color:#d80\">◆ timeout</span>\
         <span style=\"color:#a0a\">■ evict / readmit</span>\
         <span style=\"color:#06c\">▲ role change</span>\
         <span>▬ restart (crash before it, if not the node's first event)</span>\
         <span style=\"color:#c00\">● the divergent event</span></p>\n",
    );
}

fn svg(html: &mut String, merged: &Merged, window: &Window) {
    let lanes = Lanes::of(merged, window);
    let (width, height) = (lanes.width(), window.height());
    let _ = writeln!(
        html,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\">"
    );
    html.push_str(
        "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" \
         markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\">\
         <path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"#444\"/></marker></defs>\n",
    );
    if let Some(index) = window.divergent {
        let y = window.y(index) - ROW_HEIGHT_PX / 2;
        let _ = writeln!(
            html,
            "<rect class=\"divergent-row\" x=\"0\" y=\"{y}\" width=\"{width}\" \
             height=\"{ROW_HEIGHT_PX}\" fill=\"#fdd\"/>"
        );
    }
    for (lane, x) in &lanes.x {
        let _ = writeln!(
            html,
            "<text class=\"lane\" x=\"{x}\" y=\"20\" text-anchor=\"middle\" font-weight=\"bold\">{}</text>\
             <line class=\"lifeline\" x1=\"{x}\" y1=\"28\" x2=\"{x}\" y2=\"{height}\" \
             stroke=\"#999\" stroke-dasharray=\"2,3\"/>",
            escape(&lane.name())
        );
    }
    for index in window.first..=window.last {
        row(html, merged, window, &lanes, index);
    }
    html.push_str("</svg>\n");
}

/// One merged event: its log line on the left, its mark on its lifeline, and its arrow.
fn row(html: &mut String, merged: &Merged, window: &Window, lanes: &Lanes, index: usize) {
    let event = &merged.events[index];
    let y = window.y(index);
    let divergent = window.divergent == Some(index);
    let full = format!(
        "#{index} {} (lamport {}): {}",
        event.line.origin, event.lamport, event.line.kind
    );
    let shown: String = full.chars().take(LOG_TEXT_CHARS_MAX).collect();
    let ellipsis = if shown.len() < full.len() { "…" } else { "" };
    let (class, fill) = if divergent {
        ("event divergent", "#c00")
    } else {
        ("event", "#222")
    };
    let _ = writeln!(
        html,
        "<g class=\"{class}\" data-event=\"{index}\"><title>{}</title>\
         <text x=\"6\" y=\"{}\" fill=\"{fill}\"{}>{}{ellipsis}</text>",
        escape(&full),
        y + 4,
        if divergent {
            " font-weight=\"bold\""
        } else {
            ""
        },
        escape(&shown)
    );
    let x = lanes.x(Lane::of_origin(event.line.origin));
    mark(html, merged, event, index, x, y, divergent);
    if let TraceKind::Evict { follower } | TraceKind::Readmit { follower } = &event.line.kind {
        if let Some(&follower_x) = lanes.x.get(&Lane::Master(*follower)) {
            let word = if matches!(event.line.kind, TraceKind::Evict { .. }) {
                "evicted"
            } else {
                "readmitted"
            };
            let _ = write!(
                html,
                "<line x1=\"{x}\" y1=\"{y}\" x2=\"{follower_x}\" y2=\"{y}\" stroke=\"#a0a\" \
                 stroke-dasharray=\"1,3\"/><text x=\"{}\" y=\"{}\" fill=\"#a0a\">{word}</text>",
                follower_x + 6,
                y - 3
            );
        }
    }
    arrow(html, merged, window, lanes, index);
    html.push_str("</g>\n");
}

/// The mark of an event on its lifeline.
fn mark(
    html: &mut String,
    merged: &Merged,
    event: &MergedEvent,
    index: usize,
    x: usize,
    y: usize,
    divergent: bool,
) {
    let label_x = x + 8;
    let (shape, label) = match &event.line.kind {
        TraceKind::Timeout { timer } => (diamond(x, y, "#d80"), format!("{timer:?}Timeout")),
        TraceKind::Pause | TraceKind::Resume { .. } => (bar(x, y), event.line.kind.to_string()),
        TraceKind::Persist => (dot(x, y, "#080", 3), event.line.kind.to_string()),
        TraceKind::Evict { follower } => (square(x, y, "#a0a"), format!("Evict m{follower}")),
        TraceKind::Readmit { follower } => (square(x, y, "#a0a"), format!("Readmit m{follower}")),
        TraceKind::BecomePreCandidate { .. }
        | TraceKind::BecomeCandidate { .. }
        | TraceKind::BecomeLeader { .. }
        | TraceKind::BecomeFollower { .. } => (triangle(x, y, "#06c"), event.line.kind.to_string()),
        TraceKind::Restart => {
            let crashed = merged.events[..index]
                .iter()
                .any(|earlier| earlier.line.origin == event.line.origin);
            let label = if crashed {
                "CRASH, Restart from durable state"
            } else {
                "Restart (start)"
            };
            (bar(x, y), label.to_string())
        }
        TraceKind::CommitAdvance { .. }
        | TraceKind::RequestAccepted { .. }
        | TraceKind::RequestCompleted { .. }
        | TraceKind::KvRequestCompleted { .. }
        | TraceKind::WatchEnded { .. }
        | TraceKind::ConnectionClosed { .. }
        | TraceKind::WatchDenied { .. }
        | TraceKind::LateReply { .. }
        | TraceKind::ForwardLost { .. } => (dot(x, y, "#222", 3), event.line.kind.to_string()),
        TraceKind::Send { .. } | TraceKind::Receive { .. } => (dot(x, y, "#444", 2), String::new()),
    };
    html.push_str(&shape);
    if divergent {
        html.push_str(&dot(x, y, "#c00", 6));
    }
    if !label.is_empty() {
        let _ = write!(
            html,
            "<text x=\"{label_x}\" y=\"{}\" fill=\"{}\">{}</text>",
            y - 3,
            if divergent { "#c00" } else { "#555" },
            escape(&label)
        );
    }
}

fn dot(x: usize, y: usize, fill: &str, radius: usize) -> String {
    format!("<circle cx=\"{x}\" cy=\"{y}\" r=\"{radius}\" fill=\"{fill}\"/>")
}

fn diamond(x: usize, y: usize, fill: &str) -> String {
    format!(
        "<path d=\"M {x} {} L {} {y} L {x} {} L {} {y} z\" fill=\"{fill}\"/>",
        y - 6,
        x + 6,
        y + 6,
        x - 6
    )
}

fn square(x: usize, y: usize, fill: &str) -> String {
    format!(
        "<rect x=\"{}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{fill}\"/>",
        x - 5,
        y - 5
    )
}

fn triangle(x: usize, y: usize, fill: &str) -> String {
    format!(
        "<path d=\"M {x} {} L {} {} L {} {} z\" fill=\"{fill}\"/>",
        y - 6,
        x + 6,
        y + 5,
        x - 6,
        y + 5
    )
}

fn bar(x: usize, y: usize) -> String {
    format!(
        "<rect x=\"{}\" y=\"{}\" width=\"36\" height=\"5\" fill=\"#000\"/>",
        x - 18,
        y - 2
    )
}

/// The arrow of a message event: a `Send` draws it to its receive (or a dashed stub when the
/// receive is not in the window or never happened); a `Receive` draws only what no send in the
/// window draws (from a client, or from a send before the window).
fn arrow(html: &mut String, merged: &Merged, window: &Window, lanes: &Lanes, index: usize) {
    let event = &merged.events[index];
    let from_x = lanes.x(Lane::of_origin(event.line.origin));
    let y = window.y(index);
    match &event.line.kind {
        TraceKind::Send { to, message } => {
            let to_x = lanes.x(Lane::of_endpoint(to));
            let name = message.name();
            let text = format!("{} -> {to}: {message}", event.line.origin);
            match (event.receive, Lane::of_endpoint(to)) {
                (Some(receive), _) if window.contains(receive) => {
                    line(html, (from_x, y), (to_x, window.y(receive)), name, &text)
                }
                (Some(receive), _) => {
                    // The window ends at the divergence (or at the end of the trace).
                    let after = if window.divergent.is_some() {
                        "the divergence"
                    } else {
                        "the window"
                    };
                    let note = format!("{name} (received at #{receive}, after {after})");
                    stub(html, from_x, y, to_x, &note, &text);
                }
                (None, Lane::Clients) => line(html, (from_x, y), (to_x, y), name, &text),
                (None, _) => {
                    let note = format!("{name} (never received)");
                    stub(html, from_x, y, to_x, &note, &text);
                }
            }
        }
        TraceKind::Receive { from, message } => {
            let source_x = lanes.x(Lane::of_endpoint(from));
            let name = message.name();
            let text = format!("{from} -> {}: {message}", event.line.origin);
            match event.send {
                Some(send) if window.contains(send) => {}
                Some(send) => {
                    let note = format!("{name} (sent at #{send}, before the window)");
                    incoming_stub(html, source_x, from_x, y, &note, &text);
                }
                None => line(html, (source_x, y), (from_x, y), name, &text),
            }
        }
        _ => {}
    }
}

/// A message arrow: from a point to a point, a short label on it, its full text as tooltip.
struct Arrow<'a> {
    from: (usize, usize),
    to: (usize, usize),
    label: &'a str,
    tooltip: &'a str,
    dashed: bool,
}

impl Arrow<'_> {
    fn draw(&self, html: &mut String) {
        let ((x1, y1), (x2, y2)) = (self.from, self.to);
        let dash = if self.dashed {
            " stroke-dasharray=\"5,3\""
        } else {
            ""
        };
        let _ = write!(
            html,
            "<g class=\"message\"><title>{}</title><line x1=\"{x1}\" y1=\"{y1}\" x2=\"{x2}\" \
             y2=\"{y2}\" stroke=\"#444\"{dash} marker-end=\"url(#arrow)\"/>\
             <text x=\"{}\" y=\"{}\" fill=\"#333\" text-anchor=\"middle\">{}</text></g>",
            escape(self.tooltip),
            (x1 + x2) / 2,
            (y1 + y2) / 2 - 2,
            escape(self.label)
        );
    }
}

fn line(html: &mut String, from: (usize, usize), to: (usize, usize), label: &str, tooltip: &str) {
    Arrow {
        from,
        to,
        label,
        tooltip,
        dashed: false,
    }
    .draw(html);
}

/// A short dashed arrow from `x` towards `toward_x` (the receive is not drawn).
fn stub(html: &mut String, x: usize, y: usize, toward_x: usize, note: &str, text: &str) {
    let end = if toward_x >= x {
        x + STUB_LENGTH_PX
    } else {
        x.saturating_sub(STUB_LENGTH_PX)
    };
    Arrow {
        from: (x, y),
        to: (end, y),
        label: note,
        tooltip: text,
        dashed: true,
    }
    .draw(html);
}

/// A short dashed arrow into `x` from the direction of `source_x` (the send is not drawn).
fn incoming_stub(html: &mut String, source_x: usize, x: usize, y: usize, note: &str, text: &str) {
    let start = if source_x >= x {
        x + STUB_LENGTH_PX
    } else {
        x.saturating_sub(STUB_LENGTH_PX)
    };
    Arrow {
        from: (start, y),
        to: (x, y),
        label: note,
        tooltip: text,
        dashed: true,
    }
    .draw(html);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::FieldDiff;
    use crate::trace::{Header, TraceLine};
    use vigil_core::{
        Ballot, ClientError, LedgerCounters, MasterPostState, Message, Operation, PostState, Role,
        Timer,
    };

    const INJECTED: &str = "<script>alert('x')</script>";

    fn master_post() -> PostState {
        PostState::Master(MasterPostState {
            role: Role::Follower,
            promised: Ballot::ZERO,
            leader: None,
            commit_index: 0,
            last_slot: 0,
            active: Vec::new(),
            evicted: Vec::new(),
        })
    }

    fn line(
        origin: Origin,
        sequence: u64,
        lamport: u64,
        id: Option<&str>,
        kind: TraceKind,
    ) -> TraceLine {
        let post = match origin {
            Origin::Master(_) => master_post(),
            Origin::Proxy(_) => PostState::Proxy(LedgerCounters::default()),
        };
        TraceLine {
            origin,
            sequence,
            input: None,
            lamport: Some(lamport),
            message_id: id.map(str::to_string),
            kind,
            post,
        }
    }

    fn node(name: &str, events: Vec<TraceLine>) -> NodeTrace {
        NodeTrace {
            path: PathBuf::from(format!("{name}.ndjson")),
            header: Header::new(name, "local", &vigil_core::Config::default()),
            events,
        }
    }

    fn master(node: u64) -> Endpoint {
        Endpoint::Master {
            node,
            cluster: Some("local".to_string()),
        }
    }

    /// m0 is elected with m1's promise, sends a Prepare m2 never receives, evicts m2 and then
    /// times out; m1 crashes and restarts; the proxy answers a client naming an unknown cluster.
    fn small_trace() -> Vec<NodeTrace> {
        let ballot = Ballot::new(1, 0);
        let prepare = Message::Prepare {
            ballot,
            commit_index: 0,
        };
        let promise = Message::Promise {
            ballot,
            commit_index: 0,
            entries: Vec::new(),
            snapshot: None,
        };
        let (m0, m1, p1) = (Origin::Master(0), Origin::Master(1), Origin::Proxy(1));
        let send = |to, message| TraceKind::Send { to, message };
        let receive = |from, message| TraceKind::Receive { from, message };
        let m0_events = vec![
            line(
                m0,
                0,
                1,
                None,
                TraceKind::Timeout {
                    timer: Timer::Election,
                },
            ),
            line(m0, 1, 2, None, TraceKind::BecomeCandidate { ballot }),
            line(
                m0,
                2,
                3,
                Some("m0.0.m1.1"),
                send(master(1), prepare.clone()),
            ),
            line(
                m0,
                3,
                6,
                Some("m1.0.m0.1"),
                receive(master(1), promise.clone()),
            ),
            line(m0, 4, 7, None, TraceKind::BecomeLeader { ballot }),
            line(
                m0,
                5,
                8,
                Some("m0.0.m2.1"),
                send(master(2), prepare.clone()),
            ),
            line(m0, 6, 9, None, TraceKind::Evict { follower: 2 }),
            line(
                m0,
                7,
                10,
                None,
                TraceKind::Timeout {
                    timer: Timer::Heartbeat,
                },
            ),
        ];
        let m1_events = vec![
            line(m1, 0, 4, Some("m0.0.m1.1"), receive(master(0), prepare)),
            line(m1, 1, 5, Some("m1.0.m0.1"), send(master(0), promise)),
            line(m1, 0, 7, None, TraceKind::Restart),
        ];
        vec![
            node("m0", m0_events),
            node("m1", m1_events),
            node("p1", unknown_cluster_events(p1)),
        ]
    }

    /// The proxy `p1` answers a client naming an unknown cluster.
    fn unknown_cluster_events(p1: Origin) -> Vec<TraceLine> {
        let request = Message::Request {
            request_id: 7,
            cluster: INJECTED.to_string(),
            operation: Operation::Get {
                key: b"k0".to_vec(),
            },
        };
        let reply = Message::Reply {
            request_id: 7,
            outcome: Err(ClientError::UnknownCluster),
        };
        vec![
            line(
                p1,
                0,
                1,
                None,
                TraceKind::Receive {
                    from: Endpoint::Client(3),
                    message: request,
                },
            ),
            line(
                p1,
                1,
                2,
                None,
                TraceKind::Send {
                    to: Endpoint::Client(3),
                    message: reply,
                },
            ),
        ]
    }

    fn divergence_at(merged: &Merged, kind: &str) -> Divergence {
        let index = merged
            .events
            .iter()
            .position(|event| event.line.kind.to_string() == kind)
            .expect("the event is in the trace");
        let mut divergence = Divergence::new("the post-state differs");
        divergence.event_index = Some(index);
        divergence.event = Some(format!("{}", merged.events[index].line));
        divergence.diff.push(FieldDiff {
            field: "evicted",
            expected: "[]".to_string(),
            observed: "[2]".to_string(),
        });
        divergence.notes.push(format!("a note with {INJECTED}"));
        divergence
    }

    fn render_small() -> (Merged, Divergence, String) {
        let merged = merge::merge(&small_trace()).expect("the hand-built trace merges");
        let divergence = divergence_at(&merged, "Evict m2");
        let html = render(&DiagramInput {
            label: "hand-built",
            merged: &merged,
            divergence: &divergence,
            faults: &["pause node=2 ticks 10..40".to_string()],
        })
        .expect("renders");
        (merged, divergence, html)
    }

    /// Parses the document as XML (its `<!DOCTYPE html>` is a DTD without declarations).
    fn parse(html: &str) -> roxmltree::Document<'_> {
        let options = roxmltree::ParsingOptions {
            allow_dtd: true,
            ..roxmltree::ParsingOptions::default()
        };
        roxmltree::Document::parse_with_options(html, options).expect("well-formed XHTML")
    }

    fn title_of<'a>(node: roxmltree::Node<'a, 'a>) -> String {
        node.children()
            .find(|child| child.has_tag_name("title"))
            .and_then(|title| title.text())
            .unwrap_or_default()
            .to_string()
    }

    fn has_class(node: &roxmltree::Node<'_, '_>, class: &str) -> bool {
        node.attribute("class")
            .is_some_and(|classes| classes.split(' ').any(|name| name == class))
    }

    #[test]
    fn the_diagram_is_well_formed_and_escapes_trace_text() {
        let (_, _, html) = render_small();
        let document = parse(&html);
        assert!(!html.contains("<script>"), "unescaped trace text");
        for external in ["src=", "href=", "<link", "<script", "@import"] {
            assert!(
                !html.contains(external),
                "no script, no external asset: {external}"
            );
        }
        let texts: String = document
            .descendants()
            .filter_map(|node| node.text())
            .collect();
        assert!(texts.contains(INJECTED), "the text survives escaping");
        assert!(texts.contains("pause node=2 ticks 10..40"));
    }

    #[test]
    fn the_diagram_draws_one_arrow_per_message_and_marks_the_lifelines() {
        let (_, _, html) = render_small();
        let document = parse(&html);
        let arrows: Vec<(String, bool)> = document
            .descendants()
            .filter(|node| has_class(node, "message"))
            .map(|node| {
                let dashed = node.children().any(|child| {
                    child.has_tag_name("line") && child.attribute("stroke-dasharray").is_some()
                });
                (title_of(node), dashed)
            })
            .collect();
        let arrow = |prefix: &str| {
            arrows
                .iter()
                .find(|(title, _)| title.starts_with(prefix))
                .unwrap_or_else(|| panic!("no arrow {prefix} in {arrows:?}"))
                .clone()
        };
        assert_eq!(arrows.len(), 5, "{arrows:?}");
        assert!(!arrow("m0 -> local/m1: Prepare").1);
        assert!(!arrow("m1 -> local/m0: Promise").1);
        assert!(arrow("m0 -> local/m2: Prepare").1, "never received: dashed");
        assert!(!arrow("c3 -> p1: Request").1);
        assert!(!arrow("p1 -> c3: Reply").1);
        let lanes: Vec<&str> = document
            .descendants()
            .filter(|node| has_class(node, "lane"))
            .filter_map(|node| node.text())
            .collect();
        assert_eq!(lanes, ["m0", "m1", "m2", "proxy", "clients (untraced)"]);
        for label in [
            "ElectionTimeout",
            "BecomeLeader ballot=1.0",
            "CRASH, Restart from durable state",
            "Prepare (never received)",
            "evicted",
        ] {
            assert!(html.contains(label), "{label} missing");
        }
    }

    #[test]
    fn the_divergent_event_is_highlighted_with_the_diff() {
        let (merged, divergence, html) = render_small();
        let document = parse(&html);
        let divergent: Vec<_> = document
            .descendants()
            .filter(|node| has_class(node, "divergent"))
            .collect();
        assert_eq!(divergent.len(), 1);
        let index = divergence.event_index.unwrap();
        assert_eq!(
            divergent[0].attribute("data-event"),
            Some(index.to_string().as_str())
        );
        assert!(title_of(divergent[0]).contains("Evict m2"));
        assert_eq!(merged.events.len(), index + 2);
        assert!(
            !html.contains("HeartbeatTimeout"),
            "the event after it is not drawn"
        );
        assert!(!html.contains(&format!("data-event=\"{}\"", index + 1)));
        let cells: Vec<&str> = document
            .descendants()
            .filter(|node| node.has_tag_name("td"))
            .filter_map(|node| node.text())
            .collect();
        assert_eq!(cells, ["evicted", "[]", "[2]"]);
    }

    #[test]
    fn the_window_is_the_last_events_up_to_the_divergence() {
        let merged = merge::merge(&small_trace()).expect("merges");
        let event = merged.events[0].clone();
        let long = Merged {
            events: vec![event; 3 * WINDOW_EVENTS_MAX],
            nodes: merged.nodes.clone(),
        };
        let mut divergence = Divergence::new("action not enabled");
        divergence.event_index = Some(2 * WINDOW_EVENTS_MAX + 10);
        let window = Window::of(&long, &divergence).unwrap().unwrap();
        assert_eq!(window.first, WINDOW_EVENTS_MAX + 11);
        assert_eq!(window.last - window.first + 1, WINDOW_EVENTS_MAX);
        divergence.event_index = None;
        let window = Window::of(&long, &divergence).unwrap().unwrap();
        assert_eq!(
            (window.last, window.divergent),
            (3 * WINDOW_EVENTS_MAX - 1, None)
        );
        divergence.event_index = Some(3 * WINDOW_EVENTS_MAX);
        assert!(matches!(
            Window::of(&long, &divergence),
            Err(DiagramError::EventOutOfRange { .. })
        ));
    }
}
