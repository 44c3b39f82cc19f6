//! The fuzz corpus replayed on stable, in CI: every file under `fuzz/corpus/<target>/` goes
//! through the same entry point as the cargo-fuzz target of that name (`vigil::fuzzing`), and
//! must neither panic nor be accepted when it is bad. File names carry the expectation:
//! `ok-*` must be accepted, `bad-<reason>-*` / `refused-<reason>-*` refused with that reason,
//! `random-*` only survived.
//!
//! The generated seeds (valid frames, their truncations, oversized and unknown-type frames,
//! handshake refusals, seeded random bytes) are rebuilt here and must equal the checked-in
//! files, so the corpus cannot drift from the code; `VIGIL_WRITE_CORPUS=1 cargo test --test
//! fuzz_corpus` rewrites them. Hand-made seeds (the config files) are only replayed.

use std::path::{Path, PathBuf};

use vigil::auth::AuthFrame;
use vigil::codec::{self, DialerRole, Hello, PROTOCOL_VERSION};
use vigil::fuzzing;
use vigil::wire::{ClientFrame, PeerFrame};
use vigil_core::{Ballot, Message, Operation};

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut bytes = (payload.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(payload);
    bytes
}

fn encoded<T: serde::Serialize>(value: &T) -> Vec<u8> {
    frame(&codec::encode(value).unwrap())
}

/// Deterministic bytes (xorshift64), so "random" seeds are reproducible.
fn random_bytes(seed: u64, length: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn hello(cluster: &str, version: u32, role: DialerRole) -> Vec<u8> {
    encoded(&Hello {
        protocol_version: version,
        cluster: cluster.to_string(),
        role,
    })
}

fn frame_seeds() -> Vec<(String, Vec<u8>)> {
    let prepare = encoded(&PeerFrame::Protocol {
        message: Message::Prepare {
            ballot: Ballot { round: 7, node: 2 },
            commit_index: 41,
        },
        stamp: None,
    });
    let request = encoded(&ClientFrame::Request {
        request_id: 3,
        cluster: "prod".into(),
        operation: Operation::Cas {
            key: b"lock".to_vec(),
            expected_version: 4,
            value: b"owner-a".to_vec(),
        },
        token: None,
    });
    let hello = hello("prod", PROTOCOL_VERSION, DialerRole::Master(1));
    let mut seeds = vec![
        ("ok-peer-prepare".to_string(), prepare.clone()),
        ("ok-client-request".to_string(), request.clone()),
        ("ok-hello".to_string(), hello.clone()),
        (
            "ok-three-frames".to_string(),
            [hello, prepare.clone(), request.clone()].concat(),
        ),
        ("bad-truncated-length-prefix".to_string(), vec![0, 0]),
        (
            "bad-truncated-payload".to_string(),
            prepare[..prepare.len() - 3].to_vec(),
        ),
        (
            "bad-oversized-length".to_string(),
            vec![0xff, 0xff, 0xff, 0xff, 1, 2, 3],
        ),
        (
            "bad-undecodable-unknown-type".to_string(),
            frame(&[99, 0, 0]),
        ),
        (
            "bad-undecodable-trailing-bytes".to_string(),
            frame(&[&request[4..], &[0, 0, 0][..]].concat()),
        ),
    ];
    for seed in 0..8u64 {
        let length = 1 + (seed as usize * 61) % 400;
        seeds.push((format!("random-{seed}"), random_bytes(seed, length)));
    }
    seeds
}

fn handshake_seeds() -> Vec<(String, Vec<u8>)> {
    let proxy = hello("fuzz", PROTOCOL_VERSION, DialerRole::Proxy);
    let challenge = |nonce| {
        encoded(&AuthFrame::Challenge {
            dialer_nonce: nonce,
        })
    };
    let forged = encoded(&AuthFrame::Proof {
        dialer_proof: [0; 32],
    });
    let mut seeds = vec![
        ("refused-closed-empty".to_string(), Vec::new()),
        ("refused-bad_frame-oversized".to_string(), vec![0xff; 8]),
        (
            "refused-bad_frame-garbage".to_string(),
            frame(&random_bytes(99, 40)),
        ),
        (
            "refused-cluster-other".to_string(),
            hello("other", PROTOCOL_VERSION, DialerRole::Proxy),
        ),
        (
            "refused-version-next".to_string(),
            hello("fuzz", PROTOCOL_VERSION + 1, DialerRole::Proxy),
        ),
        (
            "refused-role-client".to_string(),
            hello("fuzz", PROTOCOL_VERSION, DialerRole::Client),
        ),
        (
            "refused-node_id-self".to_string(),
            hello("fuzz", PROTOCOL_VERSION, DialerRole::Master(0)),
        ),
        (
            "refused-node_id-outside".to_string(),
            hello("fuzz", PROTOCOL_VERSION, DialerRole::Master(9)),
        ),
        (
            "refused-auth-no-secret".to_string(),
            [proxy.clone(), challenge(None)].concat(),
        ),
        (
            "refused-auth-closed-after-challenge".to_string(),
            [proxy.clone(), challenge(Some([5; 32]))].concat(),
        ),
        (
            "refused-auth-forged-proof".to_string(),
            [proxy.clone(), challenge(Some([5; 32])), forged].concat(),
        ),
        (
            "refused-bad_frame-garbage-after-welcome".to_string(),
            [proxy, frame(&[200, 1, 2])].concat(),
        ),
    ];
    for seed in 0..6u64 {
        let length = 1 + (seed as usize * 53) % 300;
        seeds.push((format!("random-{seed}"), random_bytes(1000 + seed, length)));
    }
    seeds
}

/// Compares (or with `VIGIL_WRITE_CORPUS=1`, writes) the generated seeds of `target`.
fn check_generated(target: &str, seeds: Vec<(String, Vec<u8>)>) {
    let directory = corpus(target);
    let write = std::env::var_os("VIGIL_WRITE_CORPUS").is_some();
    for (name, bytes) in seeds {
        let path = directory.join(&name);
        if write {
            std::fs::create_dir_all(&directory).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let on_disk = std::fs::read(&path).unwrap_or_else(|error| {
            panic!(
                "{}: {error} (VIGIL_WRITE_CORPUS=1 writes it)",
                path.display()
            )
        });
        assert_eq!(
            on_disk,
            bytes,
            "{} differs from its generator",
            path.display()
        );
    }
}

fn files(target: &str) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(corpus(target))
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    assert!(files.len() >= 8, "{target}: corpus too small");
    files
}

#[test]
fn generated_seeds_are_checked_in() {
    check_generated("frames", frame_seeds());
    check_generated("handshake", handshake_seeds());
}

#[test]
fn frame_corpus_replays() {
    for (name, bytes) in files("frames") {
        let outcome = fuzzing::decode_frames(&bytes);
        if name.starts_with("ok-") {
            assert!(
                outcome.error.is_none() && outcome.frames > 0,
                "{name}: {outcome:?}"
            );
            assert_eq!(outcome.decoded, outcome.frames, "{name}: {outcome:?}");
        } else if let Some(rest) = name.strip_prefix("bad-") {
            let reason = rest.split('-').next().unwrap();
            let refused = match reason {
                "undecodable" => outcome.decoded < outcome.frames,
                reason => outcome.error == Some(reason),
            };
            assert!(refused, "{name}: {outcome:?}");
        }
    }
}

#[test]
fn handshake_corpus_replays() {
    for (name, bytes) in files("handshake") {
        let verdict = fuzzing::handshake(&bytes);
        let Err(error) = verdict else {
            panic!("{name}: accepted {verdict:?} without the cluster secret")
        };
        if let Some(rest) = name.strip_prefix("refused-") {
            let reason = rest.split('-').next().unwrap();
            assert_eq!(error.reason_label(), reason, "{name}: {error}");
        }
    }
}

#[test]
fn config_corpus_replays() {
    for (name, bytes) in files("config") {
        let (master, proxy) = fuzzing::config(&bytes);
        if name.starts_with("ok-master-") {
            assert!(master.is_ok(), "{name}: {master:?}");
        } else if name.starts_with("ok-proxy-") {
            assert!(proxy.is_ok(), "{name}: {proxy:?}");
        } else if name.starts_with("bad-") {
            assert!(
                master.is_err() && proxy.is_err(),
                "{name}: {master:?} {proxy:?}"
            );
        }
    }
}
