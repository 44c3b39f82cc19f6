//! The entry points of the fuzz targets (`fuzz/fuzz_targets/*`, cargo-fuzz, nightly) and of the
//! corpus replay test (`tests/fuzz_corpus.rs`, stable, in CI): frame decoding, the listener's
//! side of the handshake, and config parsing, each fed arbitrary bytes.
//!
//! Why in the library: the fuzzer and the replay must exercise the very same code, and that code
//! must be what the servers run — so these functions call `codec`, `transport::accept_hello` and
//! `config` directly, and only add checks a fuzzer can trip: no panic, bounded work, and every
//! value that decodes re-encodes to something that decodes to the same value.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::BytesMut;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::Decoder;

use crate::auth::{AuthFrame, Authentication, Secret};
use crate::codec::{self, CodecError, DialerRole, Hello, HelloReply};
use crate::config::{ConfigError, MasterConfig, ProxyConfig};
use crate::transport::{self, HandshakeError, HandshakePolicy};
use crate::wire::{ClientFrame, PeerFrame, ProxyFrame};

/// The frame limit under fuzzing: small, so a fuzzer explores the limit instead of memory.
pub const FUZZ_FRAME_BYTES_MAX: usize = 64 * 1024;

/// What [`decode_frames`] made of its input.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FramesOutcome {
    /// Complete frames cut from the input.
    pub frames: usize,
    /// Frames that decoded as at least one message type.
    pub decoded: usize,
    /// Why cutting stopped early, as the `vigil_bad_frames_total` reason label.
    pub error: Option<&'static str>,
}

/// Cuts `data` into frames exactly as a connection does (length prefix, limit, truncation at
/// the end), and decodes each frame as every type that travels in one. Panics only on a bug:
/// a decoded value that does not survive an encode/decode round trip.
pub fn decode_frames(data: &[u8]) -> FramesOutcome {
    let mut codec = codec::frame_codec(FUZZ_FRAME_BYTES_MAX);
    let mut buffer = BytesMut::from(data);
    let mut outcome = FramesOutcome::default();
    loop {
        let frame = match codec.decode_eof(&mut buffer) {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(error) => {
                outcome.error = Some(CodecError::Frame(error).reason_label());
                break;
            }
        };
        outcome.frames += 1;
        let decoded = [
            round_trip::<PeerFrame>(&frame),
            round_trip::<ClientFrame>(&frame),
            round_trip::<ProxyFrame>(&frame),
            round_trip::<Hello>(&frame),
            round_trip::<HelloReply>(&frame),
            round_trip::<AuthFrame>(&frame),
        ];
        if decoded.contains(&true) {
            outcome.decoded += 1;
        }
    }
    outcome
}

/// Decodes `frame` as `T`; if it decodes, checks the round trip. Returns whether it decoded.
fn round_trip<T>(frame: &BytesMut) -> bool
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let Ok(value) = codec::decode::<T>(frame) else {
        return false;
    };
    let encoded = codec::encode(&value).expect("a decoded value encodes");
    let again: T = codec::decode(&BytesMut::from(&encoded[..])).expect("re-encoded value decodes");
    assert_eq!(again, value, "encode/decode round trip");
    true
}

/// The cluster secret of the fuzzed listener (the fuzzer does not know it, like an attacker).
const FUZZ_SECRET: &[u8] = b"fuzzing-cluster-secret-0123456789";

thread_local! {
    static RUNTIME: RefCell<Option<tokio::runtime::Runtime>> = const { RefCell::new(None) };
}

/// Runs the listener's side of the handshake of a master (cluster `fuzz`, 5 masters, id 0,
/// proxies accepted, a cluster secret) against `data` as everything the dialer sends, then
/// end of stream. Returns the listener's verdict.
pub fn handshake(data: &[u8]) -> Result<DialerRole, HandshakeError> {
    RUNTIME.with(|cell| {
        let mut runtime = cell.borrow_mut();
        let runtime = runtime.get_or_insert_with(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("a current-thread runtime")
        });
        runtime.block_on(listener_handshake(data))
    })
}

async fn listener_handshake(data: &[u8]) -> Result<DialerRole, HandshakeError> {
    let secret = Secret::from_bytes(FUZZ_SECRET, "fuzzing").expect("long enough");
    let policy = HandshakePolicy {
        cluster: Some("fuzz".to_string()),
        accept_masters: Some((5, 0)),
        accept_proxies: true,
        accept_clients: false,
        authentication: Authentication::ClusterSecret(secret),
    };
    let (dialer, listener) = tokio::io::duplex(FUZZ_FRAME_BYTES_MAX);
    let (listener_read, listener_write) = tokio::io::split(listener);
    let (reader, writer) = codec::framed(listener_read, listener_write, FUZZ_FRAME_BYTES_MAX);
    let (mut dialer_read, mut dialer_write) = tokio::io::split(dialer);
    let send = async {
        // The listener may close first; what it did not read is simply unread.
        let _ = dialer_write.write_all(data).await;
        let _ = dialer_write.shutdown().await;
    };
    let drain = async {
        let mut sink = Vec::new();
        let _ = dialer_read.read_to_end(&mut sink).await;
    };
    let peer = SocketAddr::from(([127, 0, 0, 1], 9));
    let accept = async {
        let (mut reader, mut writer) = (reader, writer);
        let verdict = transport::accept_hello(
            &mut reader,
            &mut writer,
            &policy,
            Duration::from_secs(1),
            peer,
            "fuzz",
        )
        .await;
        // Closing the listener's end unblocks a dialer still writing.
        drop((reader, writer));
        verdict
    };
    let (verdict, (), ()) = tokio::join!(accept, send, drain);
    verdict
}

/// Parses `data` as a master's and as a proxy's config file (UTF-8 TOML), with validation.
/// Nothing is read from disk or the environment. Returns both verdicts.
pub fn config(data: &[u8]) -> (Result<(), ConfigError>, Result<(), ConfigError>) {
    let path = Path::new("fuzz.toml");
    let Ok(text) = std::str::from_utf8(data) else {
        let refused = || ConfigError::Parse {
            path: path.to_path_buf(),
            message: "not UTF-8".to_string(),
        };
        return (Err(refused()), Err(refused()));
    };
    (
        MasterConfig::parse(text, path).map(|_| ()),
        ProxyConfig::parse(text, path).map(|_| ()),
    )
}
