//! A harness that is SIGKILLed takes its children with it: a real `vigil master` started by the
//! process guard that the benchmark and the nemesis share (`vigil_testkit::Children`, which
//! spawns through `vigil_testkit::child_process::spawn`) must be gone soon after its harness is
//! killed with SIGKILL, which runs no `Drop`.
//!
//! The `vigil` executable comes from `vigil_testkit::vigil_binary::locate` (built by cargo if
//! it is missing or stale), found by the test and handed to its harness in `VIGIL_BIN`.
//!
//! How: the test re-executes this test binary running only the hidden test
//! `killed_harness_role` (with an environment variable naming its directory). That harness starts
//! the master from a thread that ends at once (a parent-death signal tied to the forking thread
//! would kill the master there), prints the master's PID and sleeps. The test waits until the
//! master serves its port, SIGKILLs the harness, and polls `/proc/PID` until the master is gone.
//! Everything binds 127.0.0.1; every wait is bounded.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use vigil_testkit::{vigil_binary, Children, Signal};

/// Set (to the harness's directory) only in the re-executed harness.
const HARNESS_DIRECTORY_ENV: &str = "VIGIL_TEST_KILLED_HARNESS_DIRECTORY";
/// How the harness names its master's PID on stdout.
const PID_PREFIX: &str = "vigil-master-pid=";
/// Bound of every wait of the test.
const WAIT_LIMIT: Duration = Duration::from_secs(30);
/// How long the harness sleeps if nobody kills it (it then drops its guard and exits).
const HARNESS_SLEEP: Duration = Duration::from_secs(90);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A 3-master config for master 0 on `port` (the other two never start: the master simply has
/// no quorum, which is all this test needs of it), with a cluster secret file.
fn write_master_config(directory: &Path, port: u16) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let secret = directory.join("cluster.secret");
    std::fs::write(&secret, "killed-harness-test-cluster-secret-41c7\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = format!(
        "cluster = \"harness\"\nnode_id = 0\nlisten = \"127.0.0.1:{port}\"\n\
         data_dir = \"{}\"\nmasters = [\n  {{ id = 0, address = \"127.0.0.1:{port}\" }},\n  \
         {{ id = 1, address = \"127.0.0.1:{}\" }},\n  {{ id = 2, address = \"127.0.0.1:{}\" }},\n]\n\
         [auth]\ncluster_secret_file = \"{}\"\n",
        directory.join("data-0").display(),
        free_port(),
        free_port(),
        secret.display(),
    );
    let path = directory.join("master-0.toml");
    std::fs::write(&path, config).unwrap();
    path
}

/// The harness: starts the master from a short-lived thread, prints its PID, sleeps. Runs only
/// when re-executed by [`children_die_with_a_sigkilled_harness`].
#[test]
#[ignore = "the harness of children_die_with_a_sigkilled_harness, which runs it"]
fn killed_harness_role() {
    let Some(directory) = std::env::var_os(HARNESS_DIRECTORY_ENV) else {
        eprintln!("{HARNESS_DIRECTORY_ENV} is not set: nothing to do outside the real test");
        return;
    };
    let directory = Path::new(&directory).to_path_buf();
    let port: u16 = std::env::var("VIGIL_TEST_KILLED_HARNESS_PORT")
        .unwrap()
        .parse()
        .unwrap();
    let config = write_master_config(&directory, port);
    let vigil = vigil_binary::locate().expect("the test names the vigil executable");
    let (children, pid) = std::thread::spawn(move || {
        let mut children = Children::default();
        let arguments = vec![
            "master".to_string(),
            "--config".to_string(),
            config.display().to_string(),
        ];
        let index = children
            .start("m0", &vigil, arguments, &directory.join("m0.log"))
            .expect("vigil master starts");
        let pid = children.pid(index).expect("m0 runs");
        (children, pid)
    })
    .join()
    .expect("the spawning thread");
    println!("{PID_PREFIX}{pid}");
    std::thread::sleep(HARNESS_SLEEP);
    drop(children);
}

/// Whether `pid` is gone or a zombie (dead, waiting for a reaper the test does not control).
fn is_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // `pid (comm) S ...`: the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
    }
}

/// Polls `condition` every 20 ms for up to [`WAIT_LIMIT`]; returns whether it held.
fn wait_until(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + WAIT_LIMIT;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn children_die_with_a_sigkilled_harness() {
    let vigil = vigil_binary::locate().expect("the vigil executable");
    let directory = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut harness = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "killed_harness_role", "--ignored", "--nocapture"])
        .env(HARNESS_DIRECTORY_ENV, directory.path())
        .env(vigil_binary::VIGIL_BIN_ENV, &vigil)
        .env("VIGIL_TEST_KILLED_HARNESS_PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the harness starts");
    let stdout = harness.stdout.take().unwrap();
    let (found, pid_line) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(pid) = line.strip_prefix(PID_PREFIX) {
                let _ = found.send(pid.trim().parse::<u32>().expect("a PID"));
            }
        }
    });
    let master = match pid_line.recv_timeout(WAIT_LIMIT) {
        Ok(pid) => pid,
        Err(error) => {
            let _ = harness.kill();
            let _ = harness.wait();
            panic!("the harness printed no master PID: {error}");
        }
    };
    let serving = wait_until(|| TcpStream::connect(("127.0.0.1", port)).is_ok());
    let alive_before = !is_dead(master);
    // The SIGKILL under test: the harness runs no Drop, no guard, nothing.
    harness.kill().expect("SIGKILL to the harness");
    harness.wait().expect("the harness is reaped");
    let gone = wait_until(|| is_dead(master));
    if !gone {
        let _ = vigil_testkit::send_signal(master, Signal::SIGKILL);
    }
    assert!(serving, "the master never served 127.0.0.1:{port}");
    assert!(
        alive_before,
        "the master died before its harness was killed"
    );
    assert!(gone, "master {master} outlived its SIGKILLed harness");
}
