//! The revisioned commands as a newcomer uses them: `vigil cluster` (three masters and a proxy
//! on 127.0.0.1), then `vigil put --prev-kv`, `range`, `txn` (from arguments and from a file),
//! `delete-range`, `watch` and `compact`, checking what each prints and its exit code (0 with
//! the result; non-zero with one clear line), a malformed compare refused before anything is
//! sent, and a watch that the server ends exiting non-zero with its outcome.

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");
/// How long one command or one line may take before the test fails (a bound only).
const PATIENCE: Duration = Duration::from_secs(20);

async fn vigil(arguments: &[&str]) -> Output {
    let run = Command::new(VIGIL)
        .args(arguments)
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(PATIENCE, run)
        .await
        .expect("vigil answers in time")
        .expect("vigil runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_string()
}

/// A running command whose stdout is read line by line.
struct Streaming {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Streaming {
    fn spawn(arguments: &[&str]) -> Streaming {
        let mut child = Command::new(VIGIL)
            .args(arguments)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("vigil starts");
        let stdout = child.stdout.take().expect("piped");
        Streaming {
            child,
            lines: BufReader::new(stdout).lines(),
        }
    }

    async fn next_line(&mut self) -> String {
        tokio::time::timeout(PATIENCE, self.lines.next_line())
            .await
            .expect("a line in time")
            .expect("readable")
            .expect("not closed")
    }

    /// Sends SIGINT (Ctrl-C) and waits for the exit.
    async fn interrupt(self) -> Output {
        let pid = self.child.id().expect("running").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        self.finish().await
    }

    async fn finish(self) -> Output {
        let mut child = self.child;
        let mut stdout = Vec::new();
        let mut lines = self.lines;
        while let Ok(Some(line)) = lines.next_line().await {
            stdout.extend_from_slice(line.as_bytes());
            stdout.push(b'\n');
        }
        let mut stderr = Vec::new();
        if let Some(mut pipe) = child.stderr.take() {
            use tokio::io::AsyncReadExt;
            let _ = pipe.read_to_end(&mut stderr).await;
        }
        let status = tokio::time::timeout(PATIENCE, child.wait())
            .await
            .expect("exits in time")
            .expect("waited");
        Output {
            status,
            stdout,
            stderr,
        }
    }
}

/// Starts `vigil cluster` and returns it with its proxy's address (from what it prints).
async fn start_cluster() -> (Streaming, String) {
    let mut cluster =
        Streaming::spawn(&["cluster", "--masters", "3", "--proxy-listen", "127.0.0.1:0"]);
    loop {
        let line = cluster.next_line().await;
        if let Some(address) = line.strip_prefix("proxy: ") {
            return (cluster, address.to_string());
        }
    }
}

/// `vigil COMMAND --proxy P --cluster local ARGUMENTS…`.
fn command<'a>(name: &'a str, proxy: &'a str, arguments: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec![name, "--proxy", proxy, "--cluster", "local"];
    all.extend_from_slice(arguments);
    all
}

/// Runs a command until it succeeds (the cluster may still be electing its first leader).
async fn until_success(arguments: &[&str]) -> Output {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let output = vigil(arguments).await;
        if output.status.success() {
            return output;
        }
        assert!(
            Instant::now() < deadline,
            "{arguments:?} failed: {}",
            text(&output.stderr)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_reads_writes_transacts_watches_and_compacts() {
    let (cluster, proxy) = start_cluster().await;
    let proxy = proxy.as_str();
    until_success(&command("put", proxy, &["app/a", "1"])).await;
    // put --prev-kv: the revision, and the record it replaced.
    let put = vigil(&command("put", proxy, &["--prev-kv", "app/a", "2"])).await;
    assert!(put.status.success(), "{}", text(&put.stderr));
    let printed = text(&put.stdout);
    assert!(printed.contains("written at revision 3"), "{printed}");
    assert!(
        printed.contains("previous: app/a = 1 (create_revision 2, mod_revision 2, version 1)"),
        "{printed}"
    );
    let range = vigil(&command("range", proxy, &["app/", "--prefix"])).await;
    assert!(range.status.success(), "{}", text(&range.stderr));
    assert_eq!(
        text(&range.stdout),
        "app/a = 2 (create_revision 2, mod_revision 3, version 2)\ncount 1 at revision 3"
    );
    // A watcher of the prefix from the beginning: the history replayed, then what follows.
    let mut watcher = Streaming::spawn(&command(
        "watch",
        proxy,
        &["app/", "--prefix", "--start-revision", "2"],
    ));
    assert!(watcher
        .next_line()
        .await
        .starts_with("revision 2: PUT app/a = 1"));
    assert!(watcher
        .next_line()
        .await
        .starts_with("revision 3: PUT app/a = 2"));
    // A transaction moving the value from app/a to app/b, from arguments.
    let moving = [
        "--compare",
        "value(app/a) = 2",
        "--success",
        "put app/b 2",
        "--success",
        "del app/a",
        "--failure",
        "get app/ --prefix",
    ];
    let moved = vigil(&command("txn", proxy, &moving)).await;
    assert!(moved.status.success(), "{}", text(&moved.stderr));
    let printed = text(&moved.stdout);
    assert!(
        printed.starts_with("succeeded: every compare held"),
        "{printed}"
    );
    assert!(printed.contains("(revision 4)"), "{printed}");
    assert!(watcher
        .next_line()
        .await
        .starts_with("revision 4: PUT app/b = 2"));
    assert_eq!(watcher.next_line().await, "revision 4: DELETE app/a");
    // The same again, from a file: the compare fails and the failure branch reads.
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("move.txn");
    std::fs::write(
        &file,
        "# move app/a to app/b\nvalue(app/a) = 2\n\nput app/b 2\ndel app/a\n\nget app/ --prefix\n",
    )
    .unwrap();
    let file = file.display().to_string();
    let refused = vigil(&command("txn", proxy, &["--file", &file])).await;
    assert!(refused.status.success(), "{}", text(&refused.stderr));
    let printed = text(&refused.stdout);
    assert!(
        printed.starts_with("failed: a compare did not hold"),
        "{printed}"
    );
    assert!(printed.contains("get: app/b = 2"), "{printed}");
    // A malformed compare is a parse error: nothing is sent, exit non-zero with the reason.
    let malformed = vigil(&command(
        "txn",
        proxy,
        &["--compare", "mod(app/b) == 4", "--success", "put x 1"],
    ))
    .await;
    assert!(!malformed.status.success());
    let error = text(&malformed.stderr);
    assert!(
        error.contains("compare \"mod(app/b) == 4\"") && error.contains("unknown comparison"),
        "{error}"
    );
    let limited = vigil(&command("range", proxy, &["a", "\\0", "--limit", "1"])).await;
    assert!(limited.status.success(), "{}", text(&limited.stderr));
    assert!(text(&limited.stdout).contains("count 1 at revision 4"));
    // Ctrl-C cancels the watch: exit 0.
    let interrupted = watcher.interrupt().await;
    assert!(
        interrupted.status.success(),
        "{}",
        text(&interrupted.stderr)
    );
    assert!(text(&interrupted.stderr).contains("watch cancelled"));
    // Compact; then a read and a watch below the compaction point fail, saying where it is.
    let compact = vigil(&command("compact", proxy, &["4"])).await;
    assert!(compact.status.success(), "{}", text(&compact.stderr));
    assert!(text(&compact.stdout).starts_with("compacted: history below revision 4"));
    let old = vigil(&command("range", proxy, &["app/a", "--revision", "2"])).await;
    assert!(!old.status.success());
    assert!(text(&old.stderr).contains("compacted: revisions below 4 are gone"));
    let behind = vigil(&command(
        "watch",
        proxy,
        &["app/", "--prefix", "--start-revision", "2"],
    ))
    .await;
    assert!(!behind.status.success());
    assert!(
        text(&behind.stderr).contains("watch ended: compacted — revisions below 4 are gone"),
        "{}",
        text(&behind.stderr)
    );
    // A watch on a cluster the proxy does not serve ends at once, non-zero.
    let unknown = vigil(&["watch", "--proxy", proxy, "--cluster", "nope", "k"]).await;
    assert!(!unknown.status.success());
    assert!(text(&unknown.stderr).contains("unknown cluster \"nope\""));
    let deleted = vigil(&command(
        "delete-range",
        proxy,
        &["app/", "--prefix", "--prev-kv"],
    ))
    .await;
    assert!(deleted.status.success(), "{}", text(&deleted.stderr));
    assert!(text(&deleted.stdout).starts_with("deleted 1 at revision 5"));
    let stopped = cluster.interrupt().await;
    assert!(stopped.status.success(), "{}", text(&stopped.stderr));
}
