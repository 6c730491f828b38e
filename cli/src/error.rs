//! The CLI's error type and the exit codes scripts can rely on.

use thiserror::Error;

/// Exit code: success.
pub const EXIT_OK: i32 = 0;
/// Exit code: the hub refused or failed the request (its message is printed),
/// or a check (signatures, policy succession, a confirmation prompt) said no.
pub const EXIT_REFUSED: i32 = 1;
/// Exit code: the command line is wrong.
pub const EXIT_USAGE: i32 = 2;
/// Exit code: the hub cannot be reached, or TLS failed.
pub const EXIT_UNREACHABLE: i32 = 3;
/// Exit code: a local file or key is missing, unreadable or malformed.
pub const EXIT_LOCAL: i32 = 4;

/// Why a command failed; each variant maps to one exit code.
#[derive(Debug, Error)]
pub enum CliError {
    /// Refused by the hub, a check or the user (exit 1).
    #[error("{0}")]
    Refused(String),
    /// A usage error (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The hub cannot be reached (exit 3).
    #[error("{0}")]
    Unreachable(String),
    /// A local file or key problem (exit 4).
    #[error("{0}")]
    Local(String),
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Refused(_) => EXIT_REFUSED,
            Self::Usage(_) => EXIT_USAGE,
            Self::Unreachable(_) => EXIT_UNREACHABLE,
            Self::Local(_) => EXIT_LOCAL,
        }
    }

    /// A refusal.
    pub fn refused(msg: impl Into<String>) -> Self {
        Self::Refused(msg.into())
    }

    /// A usage error.
    pub fn usage(msg: impl Into<String>) -> Self {
        Self::Usage(msg.into())
    }

    /// A local file or key error.
    pub fn local(msg: impl Into<String>) -> Self {
        Self::Local(msg.into())
    }
}

/// Result of a command.
pub type CliResult<T = ()> = Result<T, CliError>;

/// The exit-code table, as shown in `vantage --help` and docs/operators.md.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  refused: the hub refused or failed the request (its message is printed),
     or a local check said no (too few signatures, policy not accepted,
     confirmation declined)
  2  usage error (wrong flags or arguments)
  3  cannot reach the hub, or TLS failed (wrong --ca, --cert or --key?)
  4  local file or key error (missing, unreadable or malformed)";
