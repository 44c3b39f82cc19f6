//! A full disk, for real: three `vigil master` processes whose files may not grow past a small
//! limit (`ulimit -f`, RLIMIT_FSIZE, with SIGXFSZ ignored so a write past it fails with EFBIG
//! exactly like ENOSPC on a full disk — no privileges, mounts or fault hooks needed), a proxy,
//! and a client writing until the disks fill. Writes must fail loudly (the master exits naming
//! the file and the error) and must never be acknowledged: after restarting the masters without
//! the limit, every acknowledged write is there, with its value.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};
use vigil::client::Client;
use vigil_core::{OperationResult, ReplyOutcome};

const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");
/// `ulimit -f` in the shell's blocks (512 or 1024 bytes): 64–128 KiB per file.
const FILE_SIZE_LIMIT_BLOCKS: u32 = 128;
/// Each value is 1 KiB, so the log fills after some tens of writes.
const VALUE_BYTES: usize = 1024;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write_configs(directory: &Path, master_ports: &[u16], proxy_port: u16) {
    let masters: Vec<String> = master_ports
        .iter()
        .enumerate()
        .map(|(id, port)| format!("  {{ id = {id}, address = \"127.0.0.1:{port}\" }},"))
        .collect();
    for (id, port) in master_ports.iter().enumerate() {
        let config = format!(
            "cluster = \"full\"\nnode_id = {id}\nlisten = \"127.0.0.1:{port}\"\n\
             data_dir = \"{}\"\nmasters = [\n{}\n]\n[host]\ntick_interval_ms = 20\n\
             [protocol]\neviction_threshold = 5\nelection_timeout_ticks = 25\n\
             [auth]\ninsecure = true\n",
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
         [protocol]\nrequest_timeout_ticks = 50\n\
         [[clusters]]\nname = \"full\"\nmasters = [{}]\ninsecure = true\n",
        addresses.join(", ")
    );
    std::fs::write(directory.join("proxy.toml"), proxy).unwrap();
}

/// Starts a master, with its files limited to `FILE_SIZE_LIMIT_BLOCKS` if `limited`.
fn start_master(directory: &Path, id: usize, limited: bool) -> Child {
    let config = directory.join(format!("master-{id}.toml"));
    let log = std::fs::File::create(directory.join(format!("master-{id}-{limited}.log"))).unwrap();
    let mut command = if limited {
        let mut command = Command::new("sh");
        command.args([
            "-c",
            &format!("trap '' XFSZ; ulimit -f {FILE_SIZE_LIMIT_BLOCKS}; exec \"$0\" \"$@\""),
            VIGIL,
        ]);
        command
    } else {
        Command::new(VIGIL)
    };
    command
        .args(["master", "--config", &config.display().to_string()])
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("vigil master starts")
}

/// Connects to the proxy, retrying while its process starts.
async fn connect(proxy: &str) -> Client {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match Client::connect(proxy, Duration::from_secs(5)).await {
            Ok(client) => return client,
            Err(error) if Instant::now() > deadline => panic!("proxy {proxy}: {error}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

fn value(index: usize) -> Vec<u8> {
    format!("{index:08}").into_bytes().repeat(VALUE_BYTES / 8)
}

/// Puts keys until `stop` masters have exited (or 60 s, or 400 keys); returns the
/// acknowledged indices. A refused or indeterminate put is retried after 50 ms under a new key
/// (during the first election the proxy answers `NoLeader`).
async fn write_until_full(proxy: &str, masters: &mut [Child], stop: usize) -> Vec<usize> {
    let mut client = connect(proxy).await;
    let mut acknowledged = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    for index in 0..400 {
        let key = format!("key-{index}");
        match client.put("full", key.as_bytes(), &value(index)).await {
            Ok(Ok(OperationResult::Written { .. })) => acknowledged.push(index),
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            // The connection failed: reconnect.
            Err(_) => client = connect(proxy).await,
        }
        let mut exited = 0;
        for master in masters.iter_mut() {
            if matches!(master.try_wait(), Ok(Some(_))) {
                exited += 1;
            }
        }
        if exited >= stop || Instant::now() > deadline {
            break;
        }
    }
    acknowledged
}

async fn get_until_answered(client: &mut Client, key: &str) -> ReplyOutcome {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let outcome = client.get("full", key.as_bytes()).await.unwrap();
        if outcome.is_ok() || Instant::now() > deadline {
            return outcome;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_master_loudly_and_loses_no_acknowledged_write() {
    let directory = tempfile::tempdir().unwrap();
    let directory = directory.path();
    let master_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let proxy_port = free_port();
    write_configs(directory, &master_ports, proxy_port);
    let mut masters: Vec<Child> = (0..3).map(|id| start_master(directory, id, true)).collect();
    let proxy_log = std::fs::File::create(directory.join("proxy.log")).unwrap();
    let _proxy = Command::new(VIGIL)
        .args([
            "proxy",
            "--config",
            &directory.join("proxy.toml").display().to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(proxy_log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let proxy = format!("127.0.0.1:{proxy_port}");

    // With two of three masters stopped no quorum is left: nothing more can be acknowledged.
    let acknowledged = write_until_full(&proxy, &mut masters, 2).await;
    let logs = || {
        (0..3)
            .map(|id| {
                let path = directory.join(format!("master-{id}-true.log"));
                format!(
                    "master {id}: {}",
                    std::fs::read_to_string(path).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        acknowledged.len() >= 5,
        "some writes fit: {acknowledged:?}\n{}",
        logs()
    );
    assert!(acknowledged.len() < 400, "the disks never filled");

    let mut loud = 0;
    for (id, master) in masters.iter_mut().enumerate() {
        let status = match master.try_wait().unwrap() {
            Some(status) => status,
            None => {
                master.start_kill().unwrap();
                master.wait().await.unwrap();
                continue;
            }
        };
        let log = std::fs::read_to_string(directory.join(format!("master-{id}-true.log"))).unwrap();
        assert!(!status.success(), "master {id} exited {status}: {log}");
        let last = log.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("vigil: ") && last.contains("File too large"),
            "master {id}'s last line names the failure: {last}"
        );
        assert!(last.contains(&format!("data-{id}")), "and the file: {last}");
        loud += 1;
    }
    assert!(loud >= 2, "{loud} masters stopped on the full disk");
    eprintln!(
        "full disk: {} writes acknowledged, then {loud} of 3 masters stopped on EFBIG",
        acknowledged.len()
    );

    // The disk is freed (no limit): every master restarts from its directory, cuts any torn
    // tail, and every acknowledged write is there.
    let _restarted: Vec<Child> = (0..3)
        .map(|id| start_master(directory, id, false))
        .collect();
    let mut client = connect(&proxy).await;
    for index in &acknowledged {
        let outcome = get_until_answered(&mut client, &format!("key-{index}")).await;
        let Ok(OperationResult::Value {
            value: Some(found), ..
        }) = outcome
        else {
            panic!("acknowledged key-{index} is gone: {outcome:?}")
        };
        assert_eq!(found, value(*index), "key-{index}");
    }
}
