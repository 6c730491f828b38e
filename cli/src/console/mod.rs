//! `vantage console`: the operator's web console on 127.0.0.1. A small HTTP
//! server that serves the console's pages (built into this binary) and
//! passes the browser's requests on to the hub with the operator's own
//! credential, so no certificate goes into a browser and the hub gets no new
//! endpoint. Every request needs the session token printed at start and must
//! come from the console's own origin ([`guard`]).

mod api;
mod assets;
mod guard;

use crate::error::{CliError, CliResult};
use crate::hub::{Hub, HubOpts};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// `vantage console` options.
#[derive(Debug, Clone, Args)]
pub struct ConsoleOpts {
    /// Address to serve on; loopback only (port 0 picks a free one).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Print the URL but do not open a browser.
    #[arg(long)]
    pub no_open: bool,
    /// The approval policy the Submit page checks job files against (as
    /// `vantage check --policy`); default: the newest one the hub accepted.
    #[arg(long, env = "VANTAGE_POLICY", value_name = "FILE")]
    pub policy: Option<PathBuf>,
}

/// What every handler shares.
pub(crate) struct Console {
    /// Ordinary calls to the hub.
    hub: Hub,
    /// Result streams (no whole-call timeout).
    stream_hub: Hub,
    /// `--policy`, if given.
    policy: Option<PathBuf>,
}

/// Serves the console until Ctrl-C.
pub fn run(opts: &ConsoleOpts, hub_opts: &HubOpts) -> CliResult {
    if !opts.listen.ip().is_loopback() {
        return Err(CliError::usage(format!(
            "--listen {}: the console serves on a loopback address only (it acts with your operator certificate)",
            opts.listen
        )));
    }
    let console = Arc::new(Console {
        hub: Hub::connect(hub_opts, false)?,
        stream_hub: Hub::connect(hub_opts, true)?,
        policy: opts.policy.clone(),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::local(format!("cannot start the console's runtime: {e}")))?;
    rt.block_on(serve(console, opts))
}

async fn serve(console: Arc<Console>, opts: &ConsoleOpts) -> CliResult {
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|e| CliError::local(format!("cannot listen on {}: {e}", opts.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| CliError::local(e.to_string()))?;
    let session = guard::Session::new(addr)?;
    let url = session.start_url();
    println!(
        "vantage console for {} at\n  {url}\n(the link holds this session's token; Ctrl-C stops the console)",
        console.hub.base()
    );
    if !opts.no_open {
        open_browser(&url);
    }
    let app =
        api::router(console)
            .merge(assets::router())
            .layer(axum::middleware::from_fn_with_state(
                Arc::new(session),
                guard::check,
            ));
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| CliError::local(format!("the console's server failed: {e}")))
}

/// Opens `url` in the desktop's browser where there is a desktop; the
/// printed URL is the way in everywhere else (an SSH session, a container).
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        Some("open")
    } else if std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some()
    {
        Some("xdg-open")
    } else {
        None
    };
    let Some(cmd) = opener else {
        return;
    };
    let spawned = std::process::Command::new(cmd)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    match spawned {
        // Reaped in the background: xdg-open returns once the browser has it.
        Ok(mut child) => drop(std::thread::spawn(move || child.wait())),
        Err(e) => eprintln!("could not open a browser ({cmd}: {e}); open the URL above yourself"),
    }
}
