//! Bytes ↔ values on every TCP connection: length-delimited frames (4-byte big-endian length,
//! a hard size limit) carrying postcard-encoded values, and the versioned handshake.
//!
//! Why a handshake: a master or proxy that dials the wrong cluster (a copy-pasted address) or
//! runs an incompatible build must be refused at the door with a logged reason, not be allowed
//! to exchange protocol messages that would be misread. Why a frame limit: a garbage length
//! prefix must cost an error, never a multi-gigabyte allocation. Two limits: every frame from a
//! peer not yet known, and every frame from a client, is held to `frame_bytes_max` (a request is
//! at most that); frames from an authenticated master or proxy, and every frame a node writes, to
//! the larger `peer_frame_bytes_max`, because a `CatchUp` or `Promise` carries a snapshot of the
//! whole store and a `Range` reply may carry much of it: a link that could not carry them would
//! leave a follower behind forever and, with enough of them, the cluster without a quorum.
//!
//! Wire order on a connection: the dialer sends one [`Hello`]; the listener answers one
//! [`HelloReply`]; from then on both sides send protocol values (`vigil_core::Message`).

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

/// Bumped whenever the encoding of `Hello`, `HelloReply` or any protocol message changes
/// (2: protocol frames carry the sender's trace stamp, `wire::TraceStamp`; 3: `Heartbeat` and
/// `HeartbeatAck` carry the read round `heartbeat_sequence`, `protocol.md` §9.2). A peer of
/// another version is refused at the handshake with both versions named.
pub const PROTOCOL_VERSION: u32 = 3;

/// Default limit on one frame from a client or a peer not yet authenticated: the largest
/// request.
pub const FRAME_BYTES_MAX_DEFAULT: usize = 16 * 1024 * 1024;

/// Default limit on one frame from an authenticated master or proxy, and on every frame
/// written: the largest snapshot, catch-up or reply (1 GiB, etcd's store quota is 2 GiB by
/// default and 8 GiB at most).
pub const PEER_FRAME_BYTES_MAX_DEFAULT: usize = 1024 * 1024 * 1024;

/// The largest frame the 4-byte length prefix can state.
pub const FRAME_BYTES_MAX_LIMIT: usize = u32::MAX as usize;

/// Who is dialing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DialerRole {
    /// A master of the cluster, with its node id.
    Master(u64),
    /// A proxy that will send `Propose`.
    Proxy,
    /// A client that will send `Request` to a proxy.
    Client,
}

/// The first frame on every connection, from the dialer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Must equal the listener's [`PROTOCOL_VERSION`].
    pub protocol_version: u32,
    /// The cluster the dialer belongs to (masters, proxies); clients send an empty name since
    /// each request names its cluster.
    pub cluster: String,
    /// Who is dialing.
    pub role: DialerRole,
}

/// The listener's answer to a [`Hello`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HelloReply {
    /// The connection is open for protocol messages.
    Welcome,
    /// The connection is refused and will be closed; `reason` says why, for the dialer's log.
    Refused {
        /// Human-readable reason.
        reason: String,
    },
}

/// Why a frame could not be read or written. Each variant maps to a `reason` label of the
/// `vigil_bad_frames_total` counter.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The connection failed, or the length prefix was above the frame limit, or the peer closed
    /// in the middle of a frame.
    #[error("frame: {0}")]
    Frame(#[from] std::io::Error),
    /// The frame's bytes are not a value of the expected type (garbage or an unknown message type).
    #[error("undecodable frame of {bytes} bytes: {reason}")]
    Decode {
        /// Frame size.
        bytes: usize,
        /// Postcard's error.
        reason: String,
    },
    /// A value could not be encoded.
    #[error("encoding: {0}")]
    Encode(String),
    /// A value to write encodes to more bytes than this side's frame limit; nothing was
    /// written and the connection stays usable.
    #[error("a frame of {bytes} bytes is above the limit of {max} bytes")]
    TooLarge {
        /// The encoded value's size.
        bytes: usize,
        /// The writer's frame limit.
        max: usize,
    },
}

impl CodecError {
    /// A short label for metrics.
    pub fn reason_label(&self) -> &'static str {
        match self {
            CodecError::Frame(error) if error.kind() == std::io::ErrorKind::InvalidData => {
                "oversized"
            }
            CodecError::Frame(error)
                if error.kind() == std::io::ErrorKind::UnexpectedEof
                    || error.to_string().contains("bytes remaining") =>
            {
                "truncated"
            }
            CodecError::Frame(_) => "io",
            CodecError::Decode { .. } => "undecodable",
            CodecError::Encode(_) => "encode",
            CodecError::TooLarge { .. } => "too_large",
        }
    }
}

/// The length-delimited codec with our frame limit.
pub fn frame_codec(frame_bytes_max: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .max_frame_length(frame_bytes_max)
        .new_codec()
}

/// Reads frames from one half of a connection.
pub type FrameReader<R> = FramedRead<R, LengthDelimitedCodec>;
/// Writes frames to one half of a connection.
pub type FrameWriter<W> = FramedWrite<W, LengthDelimitedCodec>;

/// Wraps the two halves of a connection in frame readers and writers.
pub fn framed<R: AsyncRead, W: AsyncWrite>(
    read_half: R,
    write_half: W,
    frame_bytes_max: usize,
) -> (FrameReader<R>, FrameWriter<W>) {
    (
        FramedRead::new(read_half, frame_codec(frame_bytes_max)),
        FramedWrite::new(write_half, frame_codec(frame_bytes_max)),
    )
}

/// Lets `reader` read frames of up to `frame_bytes_max` bytes from now on: the peer has
/// proved who it is.
pub fn raise_read_limit<R>(reader: &mut FrameReader<R>, frame_bytes_max: usize) {
    reader.decoder_mut().set_max_frame_length(frame_bytes_max);
}

/// Lets `writer` write frames of up to `frame_bytes_max` bytes.
pub fn raise_write_limit<W>(writer: &mut FrameWriter<W>, frame_bytes_max: usize) {
    writer.encoder_mut().set_max_frame_length(frame_bytes_max);
}

/// Encodes one value as a frame payload.
pub fn encode<T: Serialize>(value: &T) -> Result<Bytes, CodecError> {
    postcard::to_allocvec(value)
        .map(Bytes::from)
        .map_err(|error| CodecError::Encode(error.to_string()))
}

/// Decodes one frame payload, which must hold exactly one value: trailing bytes are an error
/// (a frame is either what the sender encoded or garbage, never both).
pub fn decode<T: DeserializeOwned>(frame: &BytesMut) -> Result<T, CodecError> {
    let undecodable = |reason: String| CodecError::Decode {
        bytes: frame.len(),
        reason,
    };
    match postcard::take_from_bytes(frame) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(undecodable(format!("{} trailing bytes", rest.len()))),
        Err(error) => Err(undecodable(error.to_string())),
    }
}

/// Reads the next value; `Ok(None)` when the peer closed cleanly between frames.
pub async fn read_value<T, R>(reader: &mut FrameReader<R>) -> Result<Option<T>, CodecError>
where
    T: DeserializeOwned,
    R: AsyncRead + Unpin,
{
    match reader.next().await {
        None => Ok(None),
        Some(Err(error)) => Err(CodecError::Frame(error)),
        Some(Ok(frame)) => decode(&frame).map(Some),
    }
}

/// Writes one value and flushes it.
pub async fn write_value<T, W>(writer: &mut FrameWriter<W>, value: &T) -> Result<(), CodecError>
where
    T: Serialize,
    W: AsyncWrite + Unpin,
{
    writer
        .send(encode_within(writer, value)?)
        .await
        .map_err(CodecError::Frame)
}

/// Encodes `value` for `writer`, refusing it before anything is written when it is above
/// the writer's frame limit.
fn encode_within<T: Serialize, W>(writer: &FrameWriter<W>, value: &T) -> Result<Bytes, CodecError> {
    let bytes = encode(value)?;
    let max = writer.encoder().max_frame_length();
    if bytes.len() > max {
        return Err(CodecError::TooLarge {
            bytes: bytes.len(),
            max,
        });
    }
    Ok(bytes)
}

/// Writes one value without flushing (for batches; call `flush_values` after).
pub async fn feed_value<T, W>(writer: &mut FrameWriter<W>, value: &T) -> Result<(), CodecError>
where
    T: Serialize,
    W: AsyncWrite + Unpin,
{
    writer
        .feed(encode_within(writer, value)?)
        .await
        .map_err(CodecError::Frame)
}

/// Flushes values written with `feed_value`.
pub async fn flush_values<W: AsyncWrite + Unpin>(
    writer: &mut FrameWriter<W>,
) -> Result<(), CodecError> {
    SinkExt::<Bytes>::flush(writer)
        .await
        .map_err(CodecError::Frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn round_trip_and_limits() {
        let (client, server) = tokio::io::duplex(1 << 16);
        let (client_read, client_write) = tokio::io::split(client);
        let (server_read, server_write) = tokio::io::split(server);
        let (_unused_reader, mut writer) = framed(client_read, client_write, 64);
        let (mut reader, _unused_writer) = framed(server_read, server_write, 64);
        let hello = Hello {
            protocol_version: PROTOCOL_VERSION,
            cluster: "local".into(),
            role: DialerRole::Master(3),
        };
        write_value(&mut writer, &hello).await.unwrap();
        let read: Hello = read_value(&mut reader).await.unwrap().unwrap();
        assert_eq!(read, hello);
        // A length prefix above the limit is refused without allocating.
        let raw = writer.get_mut();
        raw.write_all(&1000u32.to_be_bytes()).await.unwrap();
        raw.flush().await.unwrap();
        let error = read_value::<Hello, _>(&mut reader).await.unwrap_err();
        assert_eq!(error.reason_label(), "oversized", "{error}");
    }

    #[tokio::test]
    async fn a_frame_above_the_write_limit_is_refused_before_writing_and_a_raised_limit_reads_it() {
        let (client, server) = tokio::io::duplex(1 << 16);
        let (client_read, client_write) = tokio::io::split(client);
        let (server_read, server_write) = tokio::io::split(server);
        let (_unused_reader, mut writer) = framed(client_read, client_write, 64);
        let (mut reader, _unused_writer) = framed(server_read, server_write, 64);
        let large = HelloReply::Refused {
            reason: "x".repeat(200),
        };
        let error = write_value(&mut writer, &large).await.unwrap_err();
        assert!(
            matches!(error, CodecError::TooLarge { max: 64, .. }),
            "{error}"
        );
        // Nothing left: the connection still carries the next frame.
        write_value(&mut writer, &HelloReply::Welcome)
            .await
            .unwrap();
        let read: HelloReply = read_value(&mut reader).await.unwrap().unwrap();
        assert_eq!(read, HelloReply::Welcome);
        raise_write_limit(&mut writer, 1024);
        raise_read_limit(&mut reader, 1024);
        write_value(&mut writer, &large).await.unwrap();
        let read: HelloReply = read_value(&mut reader).await.unwrap().unwrap();
        assert_eq!(read, large);
    }

    #[test]
    fn unknown_variant_is_undecodable() {
        let frame = BytesMut::from(&[200u8, 1, 2][..]);
        let error = decode::<HelloReply>(&frame).unwrap_err();
        assert_eq!(error.reason_label(), "undecodable");
    }
}
