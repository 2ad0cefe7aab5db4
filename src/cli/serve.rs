//! `cue serve`: this machine's device for other CUE processes (burn's remote backend).

use std::io::Write;

use anyhow::Context;
use clap::Args;

use cue_model::device::DeviceChoice;

/// Options of `cue serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The device to host: auto (a hardware GPU, else the CPU), gpu or cpu.
    #[arg(long, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    /// HOST:PORT to listen on (port 0 picks a free one; the address is printed).
    #[arg(long, default_value = cue_model::remote::DEFAULT_LISTEN)]
    listen: String,
}

/// Runs `cue serve` until Ctrl+C or SIGTERM. `token_file` (required) holds the token clients
/// must present.
pub fn serve_command(args: ServeArgs, token_file: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    let token_file = token_file.context("cue serve needs --token-file F: a file holding the token clients must present")?;
    cue_model::remote::serve(args.device, &args.listen, &token_file, |bound, device| {
        // One line a script or test can wait for; stdout is flushed so a pipe sees it at once.
        println!("serving {device} on ws://{bound}");
        if !bound.ip().is_loopback() {
            eprintln!("warning: listening on {bound}, beyond this machine: the WebSocket token travels unencrypted; prefer 127.0.0.1 and an SSH tunnel");
        }
        let _ = std::io::stdout().flush();
    })?;
    Ok(())
}
