//! `vantage-provision`: enrols this node with its hub at boot.
//!
//! Exit codes: 0 enrolled (or already enrolled and healthy); 1 the node is
//! broken (image, storage); 2 the volunteer must change something (the
//! status file on the boot partition says what); 75 only with `--once`: not
//! enrolled yet, try again later.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use vantage_human::Duration as HumanDuration;
use vantage_node::{client, state};
use vantage_provision::run::{self, Options, Outcome};
use vantage_provision::{clock, wifi};

#[derive(Parser)]
#[command(
    version,
    about = "Enrols this vantage node with its hub, from vantage.toml on the boot partition"
)]
struct Cli {
    /// The boot partition: vantage.toml, vantage-status.txt, vantage-reset.
    #[arg(long, env = "VANTAGE_BOOT_DIR", default_value = run::DEFAULT_BOOT_DIR)]
    boot_dir: PathBuf,
    /// The volunteer's settings file [default: BOOT_DIR/vantage.toml, or
    /// BOOT_DIR/vantage.toml.txt when only that one is there].
    #[arg(long, env = "VANTAGE_CONFIG")]
    config: Option<PathBuf>,
    /// The data partition: key, certificates, node.json.
    #[arg(long, env = "VANTAGE_DATA_DIR", default_value = state::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// The pinned network CA certificate.
    #[arg(long, env = "VANTAGE_CA", default_value = client::DEFAULT_CA_PATH)]
    ca: PathBuf,
    /// The wpa_supplicant file written from the [wifi] settings.
    #[arg(long, env = "VANTAGE_WPA_CONF", default_value = wifi::DEFAULT_WPA_CONF)]
    wpa_conf: PathBuf,
    /// The host name file written from the `hostname` setting.
    #[arg(long, env = "VANTAGE_HOSTNAME_FILE", default_value = "/etc/hostname")]
    hostname_file: PathBuf,
    /// systemd-timesyncd's flag file (mentioned in the status when the clock is wrong).
    #[arg(long, env = "VANTAGE_TIMESYNC_FLAG", default_value = clock::DEFAULT_TIMESYNC_FLAG)]
    timesync_flag: PathBuf,
    /// One attempt only: exit 75 when not enrolled yet instead of retrying.
    #[arg(long)]
    once: bool,
    /// First delay between attempts, e.g. 5s (doubles up to --retry-max; each
    /// wait is a random part of it, so nodes behind one outage spread out).
    /// A bare number is seconds, as in earlier versions.
    #[arg(long, env = "VANTAGE_RETRY_MIN", default_value = "5s",
          value_parser = HumanDuration::parse_seconds_or_text)]
    retry_min: HumanDuration,
    /// Longest delay between attempts, e.g. 5m (a bare number is seconds).
    #[arg(long, env = "VANTAGE_RETRY_MAX", default_value = "5m",
          value_parser = HumanDuration::parse_seconds_or_text)]
    retry_max: HumanDuration,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Reset, Wi-Fi, host name, enrolment (the default).
    Run,
    /// Only write the Wi-Fi and host name settings (before the network starts).
    Early,
    /// Write the REVOKED status if the agent found the node revoked (run by
    /// the agent's unit whenever the agent stops); otherwise do nothing.
    RefreshStatus,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut opts = Options::new(&cli.boot_dir, &cli.data_dir);
    if let Some(c) = cli.config {
        opts.config = c;
    }
    opts.ca = cli.ca;
    opts.wpa_conf = Some(cli.wpa_conf);
    opts.hostname_file = Some(cli.hostname_file);
    opts.timesync_flag = cli.timesync_flag;
    opts.once = cli.once;
    let second = Duration::from_secs(1);
    opts.retry_min = cli.retry_min.get().max(second);
    opts.retry_max = cli.retry_max.get().max(opts.retry_min);

    match cli.command.unwrap_or(Command::Run) {
        Command::Early => {
            run::apply_early(&opts);
            ExitCode::SUCCESS
        }
        Command::RefreshStatus => match run::refresh_status(&opts) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("vantage-provision: cannot write the status file: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Run => match run::run(&opts) {
            Ok(Outcome::Enrolled { node_id, fresh }) => {
                let how = if fresh {
                    "now enrolled"
                } else {
                    "already enrolled"
                };
                eprintln!("vantage-provision: {how} as {node_id}");
                ExitCode::SUCCESS
            }
            Ok(Outcome::NotYet) => ExitCode::from(75),
            Err(e) => {
                eprintln!("vantage-provision: giving up: {e}");
                ExitCode::from(e.exit_code())
            }
        },
    }
}
