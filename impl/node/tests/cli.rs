//! The `vigil` binary as an operator runs it: three `vigil master --config` processes and one
//! `vigil proxy --config` on 127.0.0.1, then the client subcommands, checking what they print
//! and their exit codes (0 with the result; non-zero with one clear line). The cluster secret
//! and the client token come from files and the environment, and must not appear in any log.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");

/// A free loopback port: bind, note it, release it for the process under test.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `vigil` with debug logging into `log`, and `environment` set.
fn spawn(arguments: &[&str], log: &Path, environment: &[(&str, &str)]) -> Child {
    Command::new(VIGIL)
        .args(arguments)
        .envs(environment.iter().copied())
        .env("RUST_LOG", "debug")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .kill_on_drop(true)
        .spawn()
        .expect("vigil starts")
}

/// The cluster secret and the client token of the test (what must never be logged).
const CLUSTER_SECRET: &str = "cli-test-cluster-secret-5f1b9c";
const CLIENT_TOKEN: &str = "cli-test-client-token-8d2e47";
/// Master 2 reads the secret from this environment variable instead of a file.
const SECRET_ENV: &str = "VIGIL_CLI_TEST_CLUSTER_SECRET";

/// Writes `text` to `directory/name`, readable by this user only.
fn write_private(directory: &Path, name: &str, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = directory.join(name);
    std::fs::write(&path, format!("{text}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

async fn vigil(arguments: &[&str]) -> Output {
    let run = Command::new(VIGIL)
        .args(arguments)
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(15), run)
        .await
        .expect("vigil answers in time")
        .expect("vigil runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_string()
}

fn write_configs(directory: &Path, master_ports: &[u16], proxy_port: u16) {
    let masters: Vec<String> = master_ports
        .iter()
        .enumerate()
        .map(|(id, port)| format!("  {{ id = {id}, address = \"127.0.0.1:{port}\" }},"))
        .collect();
    write_private(directory, "cluster.secret", CLUSTER_SECRET);
    write_private(directory, "client.token", CLIENT_TOKEN);
    write_private(directory, "wrong.token", "a-token-that-is-not-the-one");
    let secret_file = directory.join("cluster.secret").display().to_string();
    for (id, port) in master_ports.iter().enumerate() {
        let auth = match id {
            2 => format!("cluster_secret_env = \"{SECRET_ENV}\""),
            _ => format!("cluster_secret_file = \"{secret_file}\""),
        };
        let config = format!(
            "cluster = \"prod\"\nnode_id = {id}\nlisten = \"127.0.0.1:{port}\"\n\
             data_dir = \"{}\"\nmasters = [\n{}\n]\n[host]\ntick_interval_ms = 20\n\
             [protocol]\neviction_threshold = 5\nelection_timeout_ticks = 25\n[auth]\n{auth}\n",
            directory.join(format!("data-{id}")).display(),
            masters.join("\n"),
        );
        std::fs::write(directory.join(format!("master-{id}.toml")), config).unwrap();
    }
    let addresses: Vec<String> = master_ports
        .iter()
        .map(|port| format!("\"127.0.0.1:{port}\""))
        .collect();
    let proxy = format!(
        "listen = \"127.0.0.1:{proxy_port}\"\n[host]\ntick_interval_ms = 20\n\
         [protocol]\nrequest_timeout_ticks = 150\n\
         [[clusters]]\nname = \"prod\"\nmasters = [{}]\ncluster_secret_file = \"{secret_file}\"\n\
         client_token_file = \"{}\"\n",
        addresses.join(", "),
        directory.join("client.token").display(),
    );
    std::fs::write(directory.join("proxy.toml"), proxy).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masters_and_proxy_from_config_files_serve_the_cli() {
    let directory = tempfile::tempdir().unwrap();
    let master_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let proxy_port = free_port();
    write_configs(directory.path(), &master_ports, proxy_port);
    let path = |name: &str| directory.path().join(name).display().to_string();
    let log = |name: &str| directory.path().join(format!("{name}.log"));
    let mut children: Vec<Child> = (0..3)
        .map(|id| {
            let config = path(&format!("master-{id}.toml"));
            let environment = [(SECRET_ENV, CLUSTER_SECRET)];
            let environment = if id == 2 { &environment[..] } else { &[] };
            spawn(
                &["master", "--config", &config],
                &log(&format!("master-{id}")),
                environment,
            )
        })
        .collect();
    children.push(spawn(
        &["proxy", "--config", &path("proxy.toml")],
        &log("proxy"),
        &[],
    ));
    let proxy = format!("127.0.0.1:{proxy_port}");
    let token_file = path("client.token");
    let target = [
        "--proxy",
        proxy.as_str(),
        "--cluster",
        "prod",
        "--token-file",
        token_file.as_str(),
    ];
    let with = |command: &str, rest: &[&str]| {
        let mut arguments = vec![command];
        arguments.extend_from_slice(&target);
        arguments.extend_from_slice(rest);
        arguments.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };

    // The first put succeeds once a leader is elected and the proxy has found it.
    let deadline = Instant::now() + Duration::from_secs(15);
    let put = loop {
        let arguments = with("put", &["greeting", "hello"]);
        let output = vigil(&arguments.iter().map(String::as_str).collect::<Vec<_>>()).await;
        if output.status.success() || Instant::now() > deadline {
            break output;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(put.status.success(), "{}", text(&put.stderr));
    assert_eq!(text(&put.stdout), "written (version 1)");

    let run = |arguments: Vec<String>| async move {
        vigil(&arguments.iter().map(String::as_str).collect::<Vec<_>>()).await
    };
    let get = run(with("get", &["greeting"])).await;
    assert!(get.status.success());
    assert_eq!(text(&get.stdout), "hello (version 1)");

    let conflict = run(with("cas", &["greeting", "bye", "--version", "7"])).await;
    assert!(!conflict.status.success());
    let message = text(&conflict.stderr);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(message.contains("version mismatch"), "{message}");

    let mut unknown = with("get", &["greeting"]);
    unknown[4] = "no-such-cluster".to_string();
    let unknown = run(unknown).await;
    assert!(!unknown.status.success());
    assert!(
        text(&unknown.stderr).contains("unknown cluster"),
        "{}",
        text(&unknown.stderr)
    );

    let status = run(with("status", &[])).await;
    assert!(status.status.success(), "{}", text(&status.stderr));
    let report = text(&status.stdout);
    assert!(report.contains("leader: master"), "{report}");
    assert!(report.contains("in_flight=0"), "{report}");
    assert!(report.contains("accepted="), "{report}");

    let mut wrong_token = with("get", &["greeting"]);
    wrong_token[6] = path("wrong.token");
    let denied = run(wrong_token).await;
    assert!(!denied.status.success());
    let message = text(&denied.stderr);
    assert!(message.contains("permission denied"), "{message}");

    for child in &mut children {
        child.start_kill().unwrap();
        let _ = child.wait().await;
    }
    for name in ["master-0", "master-1", "master-2", "proxy"] {
        let text = std::fs::read_to_string(log(name)).unwrap();
        assert!(text.lines().count() > 3, "{name} logged: {text}");
        assert!(
            !text.contains(CLUSTER_SECRET),
            "{name} logged the cluster secret"
        );
        assert!(
            !text.contains(CLIENT_TOKEN),
            "{name} logged the client token"
        );
    }
    let denials = std::fs::read_to_string(log("proxy")).unwrap();
    assert!(
        denials.contains("client token missing or wrong"),
        "{denials}"
    );
}

#[tokio::test]
async fn a_master_without_a_secret_refuses_to_start() {
    let directory = tempfile::tempdir().unwrap();
    let config = "cluster = \"prod\"\nnode_id = 0\nlisten = \"127.0.0.1:1\"\ndata_dir = \"d\"\n\
                  masters = [ { id = 0, address = \"127.0.0.1:1\" } ]\n";
    let path = directory.path().join("master.toml");
    std::fs::write(&path, config).unwrap();
    let output = vigil(&["master", "--config", &path.display().to_string()]).await;
    assert!(!output.status.success());
    let message = text(&output.stderr);
    assert!(
        message.contains("auth.cluster_secret_file: missing"),
        "{message}"
    );
    assert!(message.contains("insecure = true"), "{message}");
}

#[tokio::test]
async fn a_bad_config_is_refused_naming_the_field() {
    let directory = tempfile::tempdir().unwrap();
    let config = "cluster = \"prod\"\nnode_id = 0\nlisten = \"127.0.0.1:1\"\ndata_dir = \"d\"\n\
                  masters = [ { id = 0, address = \"127.0.0.1\" } ]\n";
    let path = directory.path().join("master.toml");
    std::fs::write(&path, config).unwrap();
    let output = vigil(&["master", "--config", &path.display().to_string()]).await;
    assert!(!output.status.success());
    let message = text(&output.stderr);
    assert!(message.contains("masters[0].address"), "{message}");
}
