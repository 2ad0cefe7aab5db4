//! The model on a device another process hosts: burn's own remote backend (burn-remote) over
//! WebSocket, with burn-remote's `TokenAuthorizer` on the server and the token as the client's
//! credential.
//!
//! The WebSocket transport is unencrypted, so the token only keeps stray clients out; `cue
//! serve` listens on localhost unless told otherwise, and a server on another machine is
//! reached through an SSH tunnel (README, "A shared GPU server").

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

/// Opens a session with the `cue serve` at `address` (`HOST:PORT`), presenting the token in
/// `token_file`. Connecting retries for a few seconds while nothing answers, then fails.
#[cfg(feature = "remote")]
pub fn connect(address: &str, token_file: Option<&Path>) -> Result<ChosenDevice, RemoteError> {
    use burn::remote::{ConnectError, RemoteHost};
    let token_file = token_file.ok_or_else(|| RemoteError::NoToken(address.to_string()))?;
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
pub fn connect(_address: &str, _token_file: Option<&Path>) -> Result<ChosenDevice, RemoteError> {
    Err(RemoteError::NotBuilt)
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
        let message = connect("127.0.0.1:9", None).expect_err("no token").to_string();
        assert!(message.contains("--token-file"), "{message}");
    }
}
