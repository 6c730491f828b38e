//! Flags that used to take a bare count in their name's unit
//! (`--keepalive-secs 15`, `--node-cert-days 30`). They keep working, hidden,
//! so that existing units and scripts do not break: the command line is
//! rewritten to the duration flag that replaced each one
//! (`--keepalive 15s`) before clap reads it.

use std::ffi::OsString;

/// An old count flag and the duration flag that replaced it.
#[derive(Debug, Clone, Copy)]
pub struct Renamed {
    /// The old flag, e.g. `--keepalive-secs`.
    pub old: &'static str,
    /// The flag that replaced it, e.g. `--keepalive`.
    pub new: &'static str,
    /// The unit the old flag counted in, e.g. `s`.
    pub unit: &'static str,
}

/// `args` with every old flag of `renamed` written as its new flag with the
/// unit appended to its value, and a deprecation notice for each. Arguments
/// after `--` are left alone.
pub fn rewrite(
    args: impl IntoIterator<Item = OsString>,
    renamed: &[Renamed],
) -> (Vec<OsString>, Vec<String>) {
    let mut out = Vec::new();
    let mut notices = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "--" {
            out.push(arg);
            out.extend(args.by_ref());
            break;
        }
        let text = arg.to_string_lossy();
        let (flag, inline) = match text.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (text.to_string(), None),
        };
        let Some(r) = renamed.iter().find(|r| r.old == flag) else {
            out.push(arg);
            continue;
        };
        let value = match inline {
            Some(v) => Some(v),
            None => args.next().map(|v| v.to_string_lossy().into_owned()),
        };
        // A missing value is left for clap to report against the new flag.
        let value = value.map(|v| format!("{}{}", v.trim(), r.unit));
        notices.push(format!(
            "warning: {} is deprecated; write {} {}",
            r.old,
            r.new,
            value.as_deref().unwrap_or("DURATION")
        ));
        out.push(r.new.into());
        out.extend(value.map(OsString::from));
    }
    (out, notices)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RENAMED: &[Renamed] = &[
        Renamed {
            old: "--keepalive-secs",
            new: "--keepalive",
            unit: "s",
        },
        Renamed {
            old: "--days",
            new: "--lifetime",
            unit: "d",
        },
    ];

    fn run(args: &[&str]) -> (Vec<String>, Vec<String>) {
        let (out, notices) = rewrite(args.iter().map(OsString::from), RENAMED);
        let out = out.iter().map(|a| a.to_string_lossy().into_owned());
        (out.collect(), notices)
    }

    #[test]
    fn old_flags_become_durations() {
        let (out, notices) = run(&[
            "hub",
            "serve",
            "--keepalive-secs",
            "15",
            "--days=30",
            "--x",
            "1",
        ]);
        assert_eq!(
            out,
            [
                "hub",
                "serve",
                "--keepalive",
                "15s",
                "--lifetime",
                "30d",
                "--x",
                "1"
            ]
        );
        assert_eq!(
            notices,
            [
                "warning: --keepalive-secs is deprecated; write --keepalive 15s",
                "warning: --days is deprecated; write --lifetime 30d"
            ]
        );
    }

    #[test]
    fn new_flags_values_and_after_double_dash_are_kept() {
        let args = ["a", "--keepalive", "15s", "--", "--days", "3"];
        let (out, notices) = run(&args);
        assert_eq!(out, args);
        assert!(notices.is_empty());
        let (out, _) = run(&["a", "--days"]);
        assert_eq!(out, ["a", "--lifetime"]);
    }
}
