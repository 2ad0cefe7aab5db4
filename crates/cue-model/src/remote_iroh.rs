//! burn's remote backend over Iroh: QUIC, encrypted, each end authenticated by its endpoint id
//! (an Ed25519 key). CUE binds the endpoints itself, with relays disabled, so nothing leaves
//! for n0's relays or address lookup: a client dials the server's id at the address it is
//! given, which works offline and on a closed hospital network. The server checks burn's
//! `TokenAuthorizer` and, when given one, an allow-list of client ids; the client checks that
//! the server holds the id it dialed (Iroh's TLS does, so a server cannot be impersonated).

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use burn::remote::{ConnectError, EndpointAddr, EndpointId, IrohHost, IrohIdentity, RemoteHost};
use burn::server::{AuthorizationRequest, ClientId, PeerAuthorizer, RemoteServer, TokenAuthorizer, BURN_REMOTE_ALPN};
use iroh::endpoint::{presets, IdleTimeout, QuicTransportConfig};
use iroh::{Endpoint, RelayMode, SecretKey};

use crate::device::{ChosenDevice, DeviceChoice, RemoteTarget};
use crate::remote::{read_token, IrohServing, RemoteError};

static IDENTITY_FILE: Mutex<Option<PathBuf>> = Mutex::new(None);

/// The key file this process's Iroh identity is kept in (the CLI's global `--iroh-identity`);
/// None: [`default_identity_file`].
pub fn set_identity_file(path: Option<PathBuf>) {
    if let Ok(mut slot) = IDENTITY_FILE.lock() {
        *slot = path;
    }
}

/// `$XDG_CONFIG_HOME/cue/iroh-<role>.key`, else `~/.config/cue/iroh-<role>.key`.
pub fn default_identity_file(role: &str) -> PathBuf {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    config.join("cue").join(format!("iroh-{role}.key"))
}

fn identity_file(role: &str) -> PathBuf {
    IDENTITY_FILE.lock().ok().and_then(|slot| slot.clone()).unwrap_or_else(|| default_identity_file(role))
}

/// The identity in `path`, created (readable by its owner only) on first use.
pub fn load_identity(path: &Path) -> Result<IrohIdentity, RemoteError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| RemoteError::Identity { path: path.to_path_buf(), reason: source.to_string() })?;
    }
    IrohIdentity::load_or_create(path).map_err(|source| RemoteError::Identity { path: path.to_path_buf(), reason: source.to_string() })
}

/// The endpoint id of the identity this process uses as `role` ("client" or "server"), or of
/// the one in the `--iroh-identity` file: what a server's allow-list names.
pub fn identity_id(role: &str) -> Result<(String, PathBuf), RemoteError> {
    let path = identity_file(role);
    Ok((load_identity(&path)?.id().to_string(), path))
}

/// The client ids in an allow-list file: one per line, `#` starts a comment.
pub fn read_allow_list(path: &Path) -> Result<HashSet<EndpointId>, RemoteError> {
    let text = std::fs::read_to_string(path).map_err(|source| RemoteError::TokenFile { path: path.to_path_buf(), source })?;
    let mut ids = HashSet::new();
    for (number, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or_default().trim();
        if entry.is_empty() {
            continue;
        }
        let id = entry.parse::<EndpointId>().map_err(|e| RemoteError::AllowList { path: path.to_path_buf(), line: number + 1, reason: e.to_string() })?;
        ids.insert(id);
    }
    if ids.is_empty() {
        return Err(RemoteError::AllowList { path: path.to_path_buf(), line: 0, reason: "it names no client id".into() });
    }
    Ok(ids)
}

/// Iroh's endpoints live on a runtime of their own, multi-threaded as burn-remote asks of an
/// application endpoint (a blocking read on a device must not starve the endpoint's I/O).
fn runtime() -> Result<&'static tokio::runtime::Runtime, RemoteError> {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    let built = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("cue-iroh")
        .enable_all()
        .build()
        .map_err(|e| RemoteError::Device(format!("cannot start the Iroh runtime: {e}")))?;
    Ok(RUNTIME.get_or_init(|| built))
}

/// How long a silent peer is waited for before the connection is dropped: a server killed
/// mid-view is reported after this, not after QUIC's default 30 s. Keep-alives every
/// [`KEEP_ALIVE`] keep a connection waiting on a long computation open.
const IDLE_TIMEOUT: Duration = Duration::from_secs(8);
const KEEP_ALIVE: Duration = Duration::from_secs(2);

/// An endpoint with relays (and so n0's address lookup) off, bound to `bind`. Segmentation
/// offload stays off as burn-remote's own endpoints have it (iroh#4555: a refused GSO batch
/// stalls every connection).
async fn bind_endpoint(secret: SecretKey, bind: &str, alpns: Vec<Vec<u8>>) -> Result<Endpoint, String> {
    let idle = IdleTimeout::try_from(IDLE_TIMEOUT).map_err(|e| e.to_string())?;
    let transport = QuicTransportConfig::builder()
        .enable_segmentation_offload(false)
        .max_idle_timeout(Some(idle))
        .keep_alive_interval(KEEP_ALIVE)
        .default_path_max_idle_timeout(IDLE_TIMEOUT)
        .default_path_keep_alive_interval(KEEP_ALIVE)
        .build();
    Endpoint::builder(presets::Minimal)
        .relay_mode(RelayMode::Disabled)
        .secret_key(secret)
        .alpns(alpns)
        .transport_config(transport)
        .clear_ip_transports()
        .bind_addr(bind)
        .map_err(|e| e.to_string())?
        .bind()
        .await
        .map_err(|e| e.to_string())
}

/// The client's endpoint for its identity file: one per key in a process, as Iroh requires.
fn client_endpoint(path: &Path) -> Result<Endpoint, RemoteError> {
    static ENDPOINTS: Mutex<Option<HashMap<PathBuf, Endpoint>>> = Mutex::new(None);
    let mut endpoints = ENDPOINTS.lock().map_err(|_| RemoteError::Device("the Iroh endpoint table is poisoned".into()))?;
    let endpoints = endpoints.get_or_insert_with(HashMap::new);
    if let Some(endpoint) = endpoints.get(path).filter(|e| !e.is_closed()) {
        return Ok(endpoint.clone());
    }
    let identity = load_identity(path)?;
    let secret = SecretKey::from_bytes(&identity.to_bytes());
    let endpoint = runtime()?
        .block_on(bind_endpoint(secret, "0.0.0.0:0", Vec::new()))
        .map_err(|reason| RemoteError::Identity { path: path.to_path_buf(), reason: format!("cannot bind an Iroh endpoint: {reason}") })?;
    endpoints.insert(path.to_path_buf(), endpoint.clone());
    Ok(endpoint)
}

/// Opens a session with the `cue serve --transport iroh` whose id is `target.iroh_server`, at
/// `target.address`, presenting the token in `token_file` and this client's identity.
pub fn connect(target: &RemoteTarget, server_id: &str, token_file: &Path) -> Result<ChosenDevice, RemoteError> {
    let spec = target.spec();
    let token = read_token(token_file)?;
    let server = server_id.parse::<EndpointId>().map_err(|e| RemoteError::Unreachable { address: spec.clone(), reason: format!("'{server_id}' is not an Iroh endpoint id ({e})") })?;
    let addresses: Vec<SocketAddr> = target
        .address
        .to_socket_addrs()
        .map_err(|e| RemoteError::Unreachable { address: spec.clone(), reason: format!("cannot resolve {}: {e}", target.address) })?
        .collect();
    let identity = identity_file("client");
    let endpoint = client_endpoint(&identity)?;
    let client_id = endpoint.id();
    let host = addresses.iter().fold(IrohHost::new(EndpointAddr::new(server)), |host, a| host.with_address(*a)).with_endpoint(endpoint);
    let host = RemoteHost::iroh(host).with_credential(token);
    let device = burn::tensor::Device::remote_options(&host).init().map_err(|e| match e {
        ConnectError::Unauthorized => RemoteError::IrohRefused { address: spec.clone(), client: client_id.to_string() },
        other => RemoteError::Unreachable { address: spec.clone(), reason: other.to_string() },
    })?;
    crate::to_host(burn::tensor::Tensor::<1>::zeros([1], &device)).map_err(|e| RemoteError::Unreachable { address: spec.clone(), reason: format!("the session does not answer ({e})") })?;
    Ok(ChosenDevice { device, description: format!("remote {}@{} (burn-remote, Iroh)", server.fmt_short(), target.address), is_gpu: false })
}

/// Opens a session only for a client that presents the token and, with an allow-list, whose
/// authenticated endpoint id is on it.
struct TokenAndAllowList {
    token: TokenAuthorizer,
    allowed: Option<HashSet<EndpointId>>,
}

impl PeerAuthorizer for TokenAndAllowList {
    fn authorize(&self, request: AuthorizationRequest<'_>) -> Result<(), String> {
        if let (Some(allowed), ClientId::Iroh(id)) = (&self.allowed, request.client)
            && !allowed.contains(&id)
        {
            return Err(format!("{} is not on the allow-list", request.client));
        }
        self.token.authorize(request)
    }
}

/// Hosts the local device `choice` over Iroh on `listen` (UDP) until Ctrl+C or SIGTERM.
pub fn serve(
    choice: DeviceChoice,
    listen: &str,
    token_file: &Path,
    identity_path: Option<&Path>,
    allow_list: Option<&Path>,
    ready: impl FnOnce(&IrohServing),
) -> Result<(), RemoteError> {
    if matches!(choice, DeviceChoice::Remote(_)) {
        return Err(RemoteError::NotLocal(choice.to_string()));
    }
    let token = read_token(token_file)?;
    let token = TokenAuthorizer::new(token).map_err(|_| RemoteError::EmptyToken(token_file.to_path_buf()))?;
    let allowed = allow_list.map(read_allow_list).transpose()?;
    let identity = load_identity(&identity_path.map_or_else(|| identity_file("server"), Path::to_path_buf))?;
    let chosen = crate::device::choose(choice).map_err(|e| RemoteError::Device(e.to_string()))?;
    let runtime = runtime()?;
    let secret = SecretKey::from_bytes(&identity.to_bytes());
    let endpoint = runtime
        .block_on(bind_endpoint(secret, listen, vec![BURN_REMOTE_ALPN.to_vec()]))
        .map_err(|reason| RemoteError::Bind { address: listen.to_string(), source: std::io::Error::other(reason) })?;
    let serving = IrohServing { id: endpoint.id().to_string(), bound: endpoint.bound_sockets(), device: chosen.description.clone(), allowed_clients: allowed.as_ref().map(HashSet::len) };
    let protocol = RemoteServer::new([chosen.device])
        .with_authorizer(TokenAndAllowList { token, allowed })
        .into_protocol(&endpoint)
        .map_err(|e| RemoteError::Serve { address: listen.to_string(), reason: e.to_string() })?;
    let router = {
        let _entered = runtime.enter();
        iroh::protocol::Router::builder(endpoint).accept(BURN_REMOTE_ALPN, protocol).spawn()
    };
    ready(&serving);
    runtime.block_on(async {
        wait_for_stop().await;
        // Closes the connections, so clients learn at once that the server is gone.
        router.shutdown().await.map_err(|e| RemoteError::Serve { address: listen.to_string(), reason: e.to_string() })
    })
}

async fn wait_for_stop() {
    #[cfg(unix)]
    {
        if let Ok(mut terminate) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_lists_take_ids_and_comments_and_name_a_bad_line() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("clients");
        let id = IrohIdentity::random().id();
        std::fs::write(&file, format!("# radiology workstations\n{id}  # room 4\n\n")).expect("write");
        assert_eq!(read_allow_list(&file).expect("list"), HashSet::from([id]));
        std::fs::write(&file, format!("{id}\nnot-an-id\n")).expect("write");
        let message = read_allow_list(&file).expect_err("bad line").to_string();
        assert!(message.contains("line 2") && message.contains("clients"), "{message}");
        std::fs::write(&file, "# nobody\n").expect("write");
        assert!(read_allow_list(&file).expect_err("empty").to_string().contains("no client id"));
    }

    #[test]
    fn an_identity_keeps_its_id_across_loads() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("keys").join("client.key");
        let first = load_identity(&path).expect("create").id();
        assert_eq!(load_identity(&path).expect("load").id(), first);
        std::fs::write(&path, b"short").expect("write");
        let message = load_identity(&path).expect_err("bad key").to_string();
        assert!(message.contains("client.key"), "{message}");
    }
}
