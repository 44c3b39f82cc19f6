//! Who may talk to whom: the cluster secret that masters and proxies prove to each other
//! (HMAC-SHA256 challenge-response, both directions) and the client tokens a proxy checks.
//!
//! Why: without it anything that can reach a master's port can say `Hello` with the right
//! cluster name and then vote, accept or propose. The cluster name is not a secret (it is in
//! every config and every log line); the secret is. The exchange runs right after the
//! `Hello`/`Welcome` of `codec.rs`, for dialers that are masters or proxies:
//!
//! ```text
//! dialer → listener  Challenge { dialer_nonce }            (None: the dialer has no secret)
//! listener → dialer  Response { listener_nonce, listener_proof }   or Insecure / Refused
//! dialer → listener  Proof { dialer_proof }
//! listener → dialer  Accepted                                       or Refused
//! proof = HMAC-SHA256(secret, label ‖ cluster ‖ dialer role ‖ dialer_nonce ‖ listener_nonce)
//! ```
//!
//! The labels differ per direction, so a proof can never be reflected back; both nonces come
//! from the OS random number generator, so a recorded exchange cannot be replayed; proofs are
//! compared in constant time. Nothing here touches the core, which stays sans-IO. The secret
//! never leaves the process: only proofs travel, and `Debug` of every secret-bearing type is
//! redacted so it cannot reach a log line.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::codec::{self, CodecError, DialerRole, FrameReader, FrameWriter};

/// A secret shorter than this (after trimming whitespace) is refused: too easy to guess.
pub const SECRET_BYTES_MIN: usize = 16;
/// Random bytes in a generated secret (hex-encoded, so twice as many characters).
const GENERATED_SECRET_BYTES: usize = 32;

/// A random challenge, fresh for every connection.
pub type Nonce = [u8; 32];
/// An HMAC-SHA256 tag.
pub type Proof = [u8; 32];

/// Why a secret could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The secret file could not be read.
    #[error("secret file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Other users may read the secret file.
    #[error("secret file {path} is readable by other users (mode {mode:o}); run chmod 600 on it")]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The environment variable is unset or not UTF-8.
    #[error("environment variable {name} is not set")]
    EnvironmentMissing {
        /// The variable.
        name: String,
    },
    /// The secret is too short.
    #[error("{origin}: the secret has {bytes} bytes after trimming whitespace; at least {SECRET_BYTES_MIN} are needed")]
    TooShort {
        /// Where it came from (file path or variable name).
        origin: String,
        /// Its length.
        bytes: usize,
    },
    /// The OS random number generator failed.
    #[error("the OS random number generator failed: {0}")]
    Random(String),
}

/// A cluster secret or a client token. Cheap to clone; `Debug` never shows the bytes.
#[derive(Clone)]
pub struct Secret(Arc<Vec<u8>>);

impl fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("Secret(<redacted>)")
    }
}

impl Secret {
    /// A secret from raw bytes; surrounding whitespace (a file's trailing newline) is trimmed.
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<Secret, SecretError> {
        let trimmed = bytes.trim_ascii();
        if trimmed.len() < SECRET_BYTES_MIN {
            return Err(SecretError::TooShort {
                origin: origin.to_string(),
                bytes: trimmed.len(),
            });
        }
        Ok(Secret(Arc::new(trimmed.to_vec())))
    }

    /// Reads a secret file. On Unix the file must not be readable by group or others.
    pub fn from_file(path: &Path) -> Result<Secret, SecretError> {
        let read_error = |source| SecretError::Read {
            path: path.to_path_buf(),
            source,
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map_err(read_error)?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(SecretError::Permissions {
                    path: path.to_path_buf(),
                    mode: mode & 0o777,
                });
            }
        }
        let bytes = std::fs::read(path).map_err(read_error)?;
        Secret::from_bytes(&bytes, &path.display().to_string())
    }

    /// Reads a secret from the environment variable `name`.
    pub fn from_environment(name: &str) -> Result<Secret, SecretError> {
        let value = std::env::var(name).map_err(|_| SecretError::EnvironmentMissing {
            name: name.to_string(),
        })?;
        Secret::from_bytes(value.as_bytes(), name)
    }

    /// A fresh random secret (hex of 32 bytes from the OS), for `vigil cluster` and tests.
    pub fn generate() -> Result<Secret, SecretError> {
        let bytes: [u8; GENERATED_SECRET_BYTES] = random_bytes()?;
        let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
        Secret::from_bytes(hex.as_bytes(), "generated")
    }

    /// The token a client presents to prove it knows this secret.
    pub fn token(&self) -> Token {
        Token(self.0.as_ref().clone())
    }

    /// Whether `presented` equals this secret, in time independent of where they differ
    /// (both sides are hashed first, so their lengths leak nothing either).
    pub fn matches(&self, presented: &Token) -> bool {
        let expected = Sha256::digest(self.0.as_slice());
        let presented = Sha256::digest(presented.0.as_slice());
        expected.ct_eq(&presented).into()
    }

    fn proof(
        &self,
        label: &[u8],
        context: &ExchangeContext<'_>,
        nonces: (&Nonce, &Nonce),
    ) -> Proof {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.0.as_slice())
            .expect("HMAC takes keys of any length");
        mac.update(label);
        context.feed(&mut mac);
        mac.update(nonces.0);
        mac.update(nonces.1);
        mac.finalize().into_bytes().into()
    }

    fn verify(
        &self,
        label: &[u8],
        context: &ExchangeContext<'_>,
        nonces: (&Nonce, &Nonce),
        proof: &Proof,
    ) -> bool {
        self.proof(label, context, nonces).ct_eq(proof).into()
    }
}

/// A client token as sent on the wire. `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token(Vec<u8>);

impl fmt::Debug for Token {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// A token from raw bytes (what a client read from its token file or environment).
    pub fn from_bytes(bytes: &[u8]) -> Token {
        Token(bytes.trim_ascii().to_vec())
    }
}

/// Whether a master or proxy authenticates its peers.
#[derive(Clone, Debug)]
pub enum Authentication {
    /// No authentication: `insecure = true` in the config. Peers with a secret are refused
    /// (a configuration mismatch is an error, never a silent downgrade).
    Insecure,
    /// Peers must prove they know this cluster secret, and this node proves it to them.
    ClusterSecret(Secret),
}

impl Authentication {
    fn secret(&self) -> Option<&Secret> {
        match self {
            Authentication::Insecure => None,
            Authentication::ClusterSecret(secret) => Some(secret),
        }
    }
}

/// The frames of the exchange (see the module comment).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthFrame {
    /// dialer → listener: a fresh nonce, or `None` if the dialer runs without a secret.
    Challenge {
        /// The dialer's nonce.
        dialer_nonce: Option<Nonce>,
    },
    /// listener → dialer: the listener's proof and its own nonce.
    Response {
        /// The listener's nonce.
        listener_nonce: Nonce,
        /// HMAC over both nonces, labelled for the listener.
        listener_proof: Proof,
    },
    /// listener → dialer: both sides run without a secret.
    Insecure,
    /// dialer → listener: the dialer's proof.
    Proof {
        /// HMAC over both nonces, labelled for the dialer.
        dialer_proof: Proof,
    },
    /// listener → dialer: the connection is open for protocol messages.
    Accepted,
    /// either side: refused, with a reason for the other side's log; the connection closes.
    Refused {
        /// Why.
        reason: String,
    },
}

/// Why the exchange failed. The caller logs it, counts it and closes the connection.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A frame could not be read or written.
    #[error("{0}")]
    Frame(#[from] CodecError),
    /// The peer closed during the exchange.
    #[error("closed during authentication")]
    Closed,
    /// The peer presented no secret, this node requires one.
    #[error("the peer presented no cluster secret (it runs with insecure = true); this node requires one")]
    PeerInsecure,
    /// The peer has a secret, this node runs without one.
    #[error("the peer presented a cluster secret; this node runs with insecure = true")]
    SelfInsecure,
    /// The peer's proof does not match: it does not know the cluster secret.
    #[error("wrong cluster secret: the peer's proof does not match")]
    WrongProof,
    /// The peer refused us.
    #[error("refused by the peer: {0}")]
    Refused(String),
    /// A frame out of order.
    #[error("unexpected {0} during authentication")]
    Unexpected(&'static str),
}

/// What both proofs bind besides the nonces: the cluster and who dialed.
#[derive(Debug)]
pub struct ExchangeContext<'a> {
    /// The cluster named in the `Hello`.
    pub cluster: &'a str,
    /// The dialer's role from the `Hello`.
    pub role: &'a DialerRole,
}

impl ExchangeContext<'_> {
    fn feed(&self, mac: &mut Hmac<Sha256>) {
        mac.update(&(self.cluster.len() as u64).to_be_bytes());
        mac.update(self.cluster.as_bytes());
        let role = match self.role {
            DialerRole::Master(id) => [&[0u8][..], &id.to_be_bytes()].concat(),
            DialerRole::Proxy => vec![1],
            DialerRole::Client => vec![2],
        };
        mac.update(&role);
    }
}

const LISTENER_LABEL: &[u8] = b"vigil-auth-v1 listener";
const DIALER_LABEL: &[u8] = b"vigil-auth-v1 dialer";

fn random_bytes<const N: usize>() -> Result<[u8; N], SecretError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|error| SecretError::Random(error.to_string()))?;
    Ok(bytes)
}

fn nonce() -> Result<Nonce, AuthError> {
    random_bytes().map_err(|error| AuthError::Refused(format!("local failure: {error}")))
}

async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
) -> Result<AuthFrame, AuthError> {
    match codec::read_value::<AuthFrame, _>(reader).await? {
        Some(AuthFrame::Refused { reason }) => Err(AuthError::Refused(reason)),
        Some(frame) => Ok(frame),
        None => Err(AuthError::Closed),
    }
}

/// The listener's side: checks the dialer's proof and proves itself. On an error the dialer
/// has been told why (best effort); the caller logs, counts and closes.
pub async fn authenticate_dialer<R, W>(
    reader: &mut FrameReader<R>,
    writer: &mut FrameWriter<W>,
    authentication: &Authentication,
    context: &ExchangeContext<'_>,
) -> Result<(), AuthError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let result = listener_exchange(reader, writer, authentication, context).await;
    tell_peer(writer, result).await
}

/// On a local verdict (not a transport failure, not the peer's own refusal), tells the peer
/// why before the connection closes, so both logs name the cause.
async fn tell_peer<W: AsyncWrite + Unpin>(
    writer: &mut FrameWriter<W>,
    result: Result<(), AuthError>,
) -> Result<(), AuthError> {
    if let Err(error) = &result {
        if !matches!(
            error,
            AuthError::Refused(_) | AuthError::Closed | AuthError::Frame(_)
        ) {
            let refusal = AuthFrame::Refused {
                reason: error.to_string(),
            };
            let _ = codec::write_value(writer, &refusal).await;
        }
    }
    result
}

async fn listener_exchange<R, W>(
    reader: &mut FrameReader<R>,
    writer: &mut FrameWriter<W>,
    authentication: &Authentication,
    context: &ExchangeContext<'_>,
) -> Result<(), AuthError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let AuthFrame::Challenge { dialer_nonce } = read_frame(reader).await? else {
        return Err(AuthError::Unexpected("frame instead of Challenge"));
    };
    let (secret, dialer_nonce) = match (authentication.secret(), dialer_nonce) {
        (None, None) => return Ok(codec::write_value(writer, &AuthFrame::Insecure).await?),
        (None, Some(_)) => return Err(AuthError::SelfInsecure),
        (Some(_), None) => return Err(AuthError::PeerInsecure),
        (Some(secret), Some(nonce)) => (secret, nonce),
    };
    let listener_nonce = nonce()?;
    let nonces = (&dialer_nonce, &listener_nonce);
    let response = AuthFrame::Response {
        listener_nonce,
        listener_proof: secret.proof(LISTENER_LABEL, context, nonces),
    };
    codec::write_value(writer, &response).await?;
    let AuthFrame::Proof { dialer_proof } = read_frame(reader).await? else {
        return Err(AuthError::Unexpected("frame instead of Proof"));
    };
    if !secret.verify(DIALER_LABEL, context, nonces, &dialer_proof) {
        return Err(AuthError::WrongProof);
    }
    Ok(codec::write_value(writer, &AuthFrame::Accepted).await?)
}

/// The dialer's side: proves it knows the secret and checks that the listener does too.
pub async fn authenticate_to_listener<R, W>(
    reader: &mut FrameReader<R>,
    writer: &mut FrameWriter<W>,
    authentication: &Authentication,
    context: &ExchangeContext<'_>,
) -> Result<(), AuthError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let result = dialer_exchange(reader, writer, authentication, context).await;
    tell_peer(writer, result).await
}

async fn dialer_exchange<R, W>(
    reader: &mut FrameReader<R>,
    writer: &mut FrameWriter<W>,
    authentication: &Authentication,
    context: &ExchangeContext<'_>,
) -> Result<(), AuthError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let secret = authentication.secret();
    let dialer_nonce = match secret {
        Some(_) => Some(nonce()?),
        None => None,
    };
    codec::write_value(writer, &AuthFrame::Challenge { dialer_nonce }).await?;
    let (secret, dialer_nonce) = match (read_frame(reader).await?, secret, dialer_nonce) {
        (AuthFrame::Insecure, None, _) => return Ok(()),
        (AuthFrame::Insecure, Some(_), _) => return Err(AuthError::PeerInsecure),
        (AuthFrame::Response { .. }, None, _) => return Err(AuthError::Unexpected("Response")),
        (
            AuthFrame::Response {
                listener_nonce,
                listener_proof,
            },
            Some(secret),
            Some(dialer_nonce),
        ) => {
            let nonces = (&dialer_nonce, &listener_nonce);
            if !secret.verify(LISTENER_LABEL, context, nonces, &listener_proof) {
                return Err(AuthError::WrongProof);
            }
            (secret, (dialer_nonce, listener_nonce))
        }
        _ => return Err(AuthError::Unexpected("frame instead of Response")),
    };
    let dialer_proof = secret.proof(DIALER_LABEL, context, (&dialer_nonce.0, &dialer_nonce.1));
    codec::write_value(writer, &AuthFrame::Proof { dialer_proof }).await?;
    match read_frame(reader).await? {
        AuthFrame::Accepted => Ok(()),
        _ => Err(AuthError::Unexpected("frame instead of Accepted")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(text: &str) -> Authentication {
        Authentication::ClusterSecret(Secret::from_bytes(text.as_bytes(), "test").unwrap())
    }

    async fn exchange(
        dialer: Authentication,
        listener: Authentication,
    ) -> (Result<(), AuthError>, Result<(), AuthError>) {
        let (client, server) = tokio::io::duplex(1 << 12);
        let (client_read, client_write) = tokio::io::split(client);
        let (server_read, server_write) = tokio::io::split(server);
        let (mut dialer_reader, mut dialer_writer) = codec::framed(client_read, client_write, 4096);
        let (mut listener_reader, mut listener_writer) =
            codec::framed(server_read, server_write, 4096);
        let role = DialerRole::Master(1);
        let context = ExchangeContext {
            cluster: "prod",
            role: &role,
        };
        tokio::join!(
            async {
                let result = authenticate_to_listener(
                    &mut dialer_reader,
                    &mut dialer_writer,
                    &dialer,
                    &context,
                )
                .await;
                drop(dialer_writer);
                result
            },
            async {
                let result = authenticate_dialer(
                    &mut listener_reader,
                    &mut listener_writer,
                    &listener,
                    &context,
                )
                .await;
                drop(listener_writer);
                result
            },
        )
    }

    #[tokio::test]
    async fn same_secret_is_accepted_both_ways() {
        let (dialer, listener) =
            exchange(secret("0123456789abcdef-A"), secret("0123456789abcdef-A")).await;
        dialer.unwrap();
        listener.unwrap();
    }

    #[tokio::test]
    async fn wrong_secret_is_refused_by_both_sides() {
        let (dialer, listener) =
            exchange(secret("0123456789abcdef-A"), secret("0123456789abcdef-B")).await;
        // The dialer checks the listener's proof first, gives up and says why.
        assert!(matches!(dialer, Err(AuthError::WrongProof)), "{dialer:?}");
        let Err(AuthError::Refused(reason)) = listener else {
            panic!("{listener:?}")
        };
        assert!(reason.contains("wrong cluster secret"), "{reason}");
    }

    #[tokio::test]
    async fn a_mismatch_of_modes_is_refused_not_downgraded() {
        let (dialer, listener) =
            exchange(Authentication::Insecure, secret("0123456789abcdef")).await;
        assert!(
            matches!(listener, Err(AuthError::PeerInsecure)),
            "{listener:?}"
        );
        assert!(matches!(dialer, Err(AuthError::Refused(_))), "{dialer:?}");
        let (dialer, listener) =
            exchange(secret("0123456789abcdef"), Authentication::Insecure).await;
        assert!(
            matches!(listener, Err(AuthError::SelfInsecure)),
            "{listener:?}"
        );
        assert!(dialer.is_err(), "{dialer:?}");
        let (dialer, listener) = exchange(Authentication::Insecure, Authentication::Insecure).await;
        dialer.unwrap();
        listener.unwrap();
    }

    #[test]
    fn secrets_are_trimmed_checked_and_redacted() {
        let error = Secret::from_bytes(b"short\n", "file").unwrap_err();
        assert!(error.to_string().contains("at least 16"), "{error}");
        let secret = Secret::from_bytes(b"  0123456789abcdef\n", "file").unwrap();
        assert!(secret.matches(&Token::from_bytes(b"0123456789abcdef")));
        assert!(!secret.matches(&Token::from_bytes(b"0123456789abcdeF")));
        assert!(!secret.matches(&Token::from_bytes(b"")));
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        assert_eq!(format!("{:?}", secret.token()), "Token(<redacted>)");
        let generated = Secret::generate().unwrap();
        assert!(!generated.matches(&Secret::generate().unwrap().token()));
    }
}
