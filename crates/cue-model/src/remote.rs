//! The model on a device another process hosts: burn's own remote backend (burn-remote) over
//! WebSocket or Iroh, with burn-remote's `TokenAuthorizer` on the server and the token as the
//! client's credential.
//!
//! The WebSocket transport is unencrypted, so the token only keeps stray clients out; `cue
//! serve` listens on localhost unless told otherwise, and a server on another machine is
//! reached through an SSH tunnel (README, "A shared GPU server"), or over Iroh
//! ([`crate::remote_iroh`]): encrypted, both ends authenticated by their keys, relays off.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::device::ChosenDevice;

/// The default address of `cue serve`: this machine only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7373";

/// Problems reaching or hosting a remote device.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The token file cannot be read.
    #[error("cannot read the token file {path}: {source}")]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The token file holds nothing.
    #[error("the token file {0} is empty (write a long random token into it)")]
    EmptyToken(PathBuf),
    /// A remote device was asked for without a token.
    #[error("remote:{0} needs the server's token: pass --token-file F")]
    NoToken(String),
    /// The server's authorizer refused the token.
    #[error("the server at {address} refused this client: wrong token (the file given with --token-file must hold the server's token)")]
    Refused {
        /// The server.
        address: String,
    },
    /// The Iroh server refused the token or this client's id.
    #[error("the server at {address} refused this client (Iroh id {client}): wrong token, or the id is not on the server's --allow-clients list")]
    IrohRefused {
        /// The server, as `iroh:ID@HOST:PORT`.
        address: String,
        /// This client's endpoint id.
        client: String,
    },
    /// An Iroh identity (key file) cannot be read, created or used.
    #[error("Iroh identity {path}: {reason}")]
    Identity {
        /// The key file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// An allow-list of client ids is malformed.
    #[error("allow-list {path}{}: {reason}", if *line > 0 { format!(", line {line}") } else { String::new() })]
    AllowList {
        /// The file.
        path: PathBuf,
        /// The line (1-based; 0: the whole file).
        line: usize,
        /// Why.
        reason: String,
    },
    /// Nothing answered, or the session could not be opened.
    #[error("cannot open a session with the server at {address}: {reason}")]
    Unreachable {
        /// The server.
        address: String,
        /// burn-remote's reason.
        reason: String,
    },
    /// A server cannot host another server's device.
    #[error("cue serve hosts a local device (auto, gpu or cpu), not {0}")]
    NotLocal(String),
    /// The listening socket cannot be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// The server stopped with an error.
    #[error("the server on {address} stopped: {reason}")]
    Serve {
        /// The address.
        address: String,
        /// burn-remote's reason.
        reason: String,
    },
    /// Choosing the local device to host failed.
    #[error("{0}")]
    Device(String),
    /// This build has no remote backend.
    #[error("this build of cue has no remote backend (built without the `remote` feature)")]
    NotBuilt,
}

/// The token in `path`, without the line end an editor adds.
pub fn read_token(path: &Path) -> Result<String, RemoteError> {
    let text = std::fs::read_to_string(path).map_err(|source| RemoteError::TokenFile { path: path.to_path_buf(), source })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(RemoteError::EmptyToken(path.to_path_buf()));
    }
    Ok(token.to_string())
}

/// What a started Iroh server tells its caller.
#[derive(Clone, Debug)]
pub struct IrohServing {
    /// The id clients dial.
    pub id: String,
    /// The UDP sockets bound.
    pub bound: Vec<SocketAddr>,
    /// The device hosted.
    pub device: String,
    /// How many client ids the allow-list holds (None: any client with the token).
    pub allowed_clients: Option<usize>,
}

/// Opens a session with the `cue serve` `target` names, presenting the token in `token_file`:
/// over WebSocket at `HOST:PORT`, or over Iroh to the server's id. Connecting retries for a few
/// seconds while nothing answers, then fails.
#[cfg(feature = "remote")]
pub fn connect(target: &crate::device::RemoteTarget, token_file: Option<&Path>) -> Result<ChosenDevice, RemoteError> {
    use burn::remote::{ConnectError, RemoteHost};
    let token_file = token_file.ok_or_else(|| RemoteError::NoToken(target.spec()))?;
    if let Some(server_id) = &target.iroh_server {
        return crate::remote_iroh::connect(target, server_id, token_file);
    }
    let address = target.address.as_str();
    let token = read_token(token_file)?;
    let host = RemoteHost::websocket(&format!("ws://{address}")).with_credential(token);
    let device = burn::tensor::Device::remote_options(&host).init().map_err(|e| match e {
        ConnectError::Unauthorized => RemoteError::Refused { address: address.to_string() },
        other => RemoteError::Unreachable { address: address.to_string(), reason: other.to_string() },
    })?;
    // A round trip before anything is uploaded: burn-remote hands back the session it already
    // has for this address and token, and one whose server went away answers nothing.
    crate::to_host(burn::tensor::Tensor::<1>::zeros([1], &device)).map_err(|e| RemoteError::Unreachable {
        address: address.to_string(),
        reason: format!(
            "the session does not answer ({e}); burn-remote 0.22.1 cannot reopen a session with a server that went away earlier in this process: restart CUE to reconnect"
        ),
    })?;
    Ok(ChosenDevice { device, description: format!("remote {address} (burn-remote, WebSocket)"), is_gpu: false })
}

/// Without the `remote` feature there is nothing to connect with.
#[cfg(not(feature = "remote"))]
pub fn connect(_target: &crate::device::RemoteTarget, _token_file: Option<&Path>) -> Result<ChosenDevice, RemoteError> {
    Err(RemoteError::NotBuilt)
}

/// Hosts the local device `choice` over Iroh on `listen` (UDP) until Ctrl+C or SIGTERM, as the
/// identity in `identity` (default: this user's server key, created on first use); only clients
/// with the token, and on the allow-list when one is given, get a session.
#[cfg(feature = "remote")]
pub fn serve_iroh(
    choice: crate::device::DeviceChoice,
    listen: &str,
    token_file: &Path,
    identity: Option<&Path>,
    allow_list: Option<&Path>,
    ready: impl FnOnce(&IrohServing),
) -> Result<(), RemoteError> {
    crate::remote_iroh::serve(choice, listen, token_file, identity, allow_list, ready)
}

/// Without the `remote` feature there is nothing to serve with.
#[cfg(not(feature = "remote"))]
pub fn serve_iroh(
    _choice: crate::device::DeviceChoice,
    _listen: &str,
    _token_file: &Path,
    _identity: Option<&Path>,
    _allow_list: Option<&Path>,
    _ready: impl FnOnce(&IrohServing),
) -> Result<(), RemoteError> {
    Err(RemoteError::NotBuilt)
}

/// This process's Iroh id as `role` ("client" or "server") and the key file it comes from: the
/// `--iroh-identity` file if one was set, else the user's default (created on first use).
#[cfg(feature = "remote")]
pub fn iroh_identity_id(role: &str) -> Result<(String, PathBuf), RemoteError> {
    crate::remote_iroh::identity_id(role)
}

/// Without the `remote` feature there is no Iroh identity.
#[cfg(not(feature = "remote"))]
pub fn iroh_identity_id(_role: &str) -> Result<(String, PathBuf), RemoteError> {
    Err(RemoteError::NotBuilt)
}

/// The key file a client or server takes its Iroh identity from (the CLI's `--iroh-identity`).
pub fn set_iroh_identity_file(path: Option<PathBuf>) {
    #[cfg(feature = "remote")]
    crate::remote_iroh::set_identity_file(path);
    #[cfg(not(feature = "remote"))]
    let _ = path;
}

/// Hosts the local device `choice` for remote clients on `listen` until the process is told to
/// stop (Ctrl+C or SIGTERM). Only clients presenting the token in `token_file` get a session.
/// `ready` is called once the socket is bound, with its address and the device's description.
#[cfg(feature = "remote")]
pub fn serve(
    choice: crate::device::DeviceChoice,
    listen: &str,
    token_file: &Path,
    ready: impl FnOnce(SocketAddr, &str),
) -> Result<(), RemoteError> {
    use burn::server::{RemoteServer, TokenAuthorizer, WebSocketTransport};
    if matches!(choice, crate::device::DeviceChoice::Remote(_)) {
        return Err(RemoteError::NotLocal(choice.to_string()));
    }
    let token = read_token(token_file)?;
    let authorizer = TokenAuthorizer::new(token).map_err(|_| RemoteError::EmptyToken(token_file.to_path_buf()))?;
    let chosen = crate::device::choose(choice).map_err(|e| RemoteError::Device(e.to_string()))?;
    let listener = std::net::TcpListener::bind(listen).map_err(|source| RemoteError::Bind { address: listen.to_string(), source })?;
    let bound = listener.local_addr().map_err(|source| RemoteError::Bind { address: listen.to_string(), source })?;
    ready(bound, &chosen.description);
    RemoteServer::new([chosen.device])
        .with_authorizer(authorizer)
        .serve(WebSocketTransport::from_listener(listener))
        .map_err(|e| RemoteError::Serve { address: bound.to_string(), reason: e.to_string() })
}

/// Without the `remote` feature there is nothing to serve with.
#[cfg(not(feature = "remote"))]
pub fn serve(
    _choice: crate::device::DeviceChoice,
    _listen: &str,
    _token_file: &Path,
    _ready: impl FnOnce(SocketAddr, &str),
) -> Result<(), RemoteError> {
    Err(RemoteError::NotBuilt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_read_without_their_line_end_and_empty_ones_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cret-token\n").expect("write");
        assert_eq!(read_token(&file).expect("token"), "s3cret-token");
        std::fs::write(&file, " \n").expect("write");
        assert!(matches!(read_token(&file), Err(RemoteError::EmptyToken(_))));
        let missing = dir.path().join("absent");
        let message = read_token(&missing).expect_err("missing").to_string();
        assert!(message.contains("absent"), "{message}");
    }

    #[cfg(feature = "remote")]
    #[test]
    fn a_remote_device_without_a_token_says_so() {
        let target = crate::device::RemoteTarget::websocket("127.0.0.1:9", None);
        let message = connect(&target, None).expect_err("no token").to_string();
        assert!(message.contains("--token-file"), "{message}");
    }
}
