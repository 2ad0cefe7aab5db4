//! `cue serve`: this machine's device for other CUE processes (burn's remote backend).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};

use cue_model::device::DeviceChoice;

/// How clients reach the server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    /// WebSocket over TCP: simple, unencrypted (keep it on localhost or behind an SSH tunnel).
    #[default]
    Websocket,
    /// Iroh (QUIC): encrypted, the server authenticated by its id and the clients by theirs;
    /// relays off, so clients dial the address given.
    Iroh,
}

/// Options of `cue serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The device to host: auto (a hardware GPU, else the CPU), gpu or cpu.
    #[arg(long, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    /// HOST:PORT to listen on: TCP for WebSocket, UDP for Iroh (port 0 picks a free one; the
    /// address is printed).
    #[arg(long, default_value = cue_model::remote::DEFAULT_LISTEN)]
    listen: String,
    /// websocket or iroh.
    #[arg(long, value_enum, default_value_t = Transport::Websocket)]
    transport: Transport,
    /// Iroh only: a file of the client ids allowed in (one per line, as `cue iroh-id` prints
    /// them; `#` starts a comment). Without it any client with the token is served.
    #[arg(long)]
    allow_clients: Option<PathBuf>,
}

/// Runs `cue serve` until Ctrl+C or SIGTERM. `token_file` (required) holds the token clients
/// must present.
pub fn serve_command(args: ServeArgs, token_file: Option<PathBuf>) -> anyhow::Result<()> {
    let token_file = token_file.context("cue serve needs --token-file F: a file holding the token clients must present")?;
    match args.transport {
        Transport::Websocket => {
            anyhow::ensure!(args.allow_clients.is_none(), "--allow-clients needs --transport iroh: a WebSocket client has no authenticated id");
            cue_model::remote::serve(args.device, &args.listen, &token_file, |bound, device| {
                // One line a script or test can wait for; stdout is flushed so a pipe sees it at once.
                println!("serving {device} on ws://{bound}");
                if !bound.ip().is_loopback() {
                    eprintln!("warning: listening on {bound}, beyond this machine: the WebSocket token travels unencrypted; prefer 127.0.0.1 and an SSH tunnel, or --transport iroh");
                }
                let _ = std::io::stdout().flush();
            })?;
        }
        Transport::Iroh => {
            cue_model::remote::serve_iroh(args.device, &args.listen, &token_file, None, args.allow_clients.as_deref(), |serving| {
                let clients = match serving.allowed_clients {
                    Some(n) => format!("{n} allowed client id(s) with the token"),
                    None => "any client with the token (no --allow-clients)".to_string(),
                };
                for bound in &serving.bound {
                    // One line per socket; clients take the `--device` it shows, with this
                    // machine's name or address where it listens on all of them.
                    let host = if bound.ip().is_unspecified() { "SERVER-HOST".to_string() } else { bound.ip().to_string() };
                    let host = if bound.is_ipv6() && !bound.ip().is_unspecified() { format!("[{host}]") } else { host };
                    println!("serving {} over Iroh to {clients}: --device remote:iroh:{}@{host}:{}", serving.device, serving.id, bound.port());
                }
                let _ = std::io::stdout().flush();
            })?;
        }
    }
    Ok(())
}
