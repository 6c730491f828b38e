//! Durations as people write them: `500ms`, `30s`, `5m`, `12h`, `7d`, `1h30m`.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A duration read from a flag, an environment variable or a configuration
/// file, and shown back in the same form. Parsed by humantime, so every
/// vantage program accepts the same units (`ms`, `s`, `m`, `h`, `d`, `w`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(std::time::Duration);

/// Text that is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a duration ({reason}); write e.g. 500ms, 30s, 5m, 12h or 7d")]
pub struct DurationError {
    text: String,
    reason: String,
}

impl Duration {
    /// Whole seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Duration(std::time::Duration::from_secs(secs))
    }

    /// Milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Duration(std::time::Duration::from_millis(ms))
    }

    /// The standard library's duration.
    pub const fn get(self) -> std::time::Duration {
        self.0
    }

    /// Whole seconds (rounded down).
    pub const fn as_secs(self) -> u64 {
        self.0.as_secs()
    }

    /// For flags and variables that used to take a bare number of seconds
    /// (`--retry-min 5` in units already in use): reads either that number or
    /// a duration such as `5s`. A clap value parser.
    pub fn parse_seconds_or_text(text: &str) -> Result<Self, DurationError> {
        match text.trim().parse::<u64>() {
            Ok(secs) => Ok(Duration::from_secs(secs)),
            Err(_) => text.parse(),
        }
    }

    /// For configuration keys that used to hold a bare number of seconds
    /// (`heartbeat_secs = 300` on cards already in use): reads either that
    /// number or a duration such as `"5m"`.
    pub fn deserialize_seconds_or_text<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DurationVisitor { seconds: true })
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        d.0
    }
}

impl From<std::time::Duration> for Duration {
    fn from(d: std::time::Duration) -> Self {
        Duration(d)
    }
}

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(text.trim())
            .map(Duration)
            .map_err(|e| DurationError {
                text: text.into(),
                reason: e.to_string(),
            })
    }
}

impl fmt::Display for Duration {
    /// The form people type: `7d`, `1h 30m`, `500ms` (humantime would write
    /// `7days` and count months of 30.44 days).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u128); 7] = [
            ("d", 86_400_000_000_000),
            ("h", 3_600_000_000_000),
            ("m", 60_000_000_000),
            ("s", 1_000_000_000),
            ("ms", 1_000_000),
            ("us", 1_000),
            ("ns", 1),
        ];
        let mut rest = self.0.as_nanos();
        if rest == 0 {
            return f.write_str("0s");
        }
        let mut sep = "";
        for (unit, size) in UNITS {
            let n = rest / size;
            if n > 0 {
                write!(f, "{sep}{n}{unit}")?;
                sep = " ";
            }
            rest %= size;
        }
        Ok(())
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DurationVisitor { seconds: false })
    }
}

struct DurationVisitor {
    /// Whether a bare number counts as seconds (old keys only).
    seconds: bool,
}

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as \"500ms\", \"30s\", \"5m\" or \"7d\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        v.parse().map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        if self.seconds {
            return Ok(Duration::from_secs(v));
        }
        Err(E::custom(format!(
            "a bare number has no unit; write a duration such as \"{v}s\""
        )))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::custom(format!("{v} is negative; a duration is not"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_prints_the_same_form() {
        for (text, d) in [
            ("500ms", Duration::from_millis(500)),
            ("30s", Duration::from_secs(30)),
            ("5m", Duration::from_secs(300)),
            ("7d", Duration::from_secs(7 * 86_400)),
            ("90d", Duration::from_secs(90 * 86_400)),
            ("1s 1ns", Duration(std::time::Duration::new(1, 1))),
            ("1h 30m", Duration::from_secs(5400)),
            ("0s", Duration::from_secs(0)),
        ] {
            assert_eq!(text.parse::<Duration>().unwrap(), d, "{text}");
            assert_eq!(d.to_string(), text);
        }
        assert_eq!("1h30m".parse::<Duration>().unwrap().as_secs(), 5400);
        assert_eq!(" 2w ".parse::<Duration>().unwrap().as_secs(), 14 * 86_400);
    }

    #[test]
    fn refusals_say_what_to_write() {
        for bad in ["", "soon", "45", "3x", "-1s"] {
            let e = bad.parse::<Duration>().unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")) && e.contains("30s"), "{e}");
        }
    }

    #[test]
    fn old_flags_read_bare_seconds() {
        for (text, secs) in [("5", 5), (" 300 ", 300), ("5s", 5), ("2m", 120)] {
            let d = Duration::parse_seconds_or_text(text).unwrap();
            assert_eq!(d, Duration::from_secs(secs), "{text}");
        }
        let e = Duration::parse_seconds_or_text("-1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("30s"), "{e}");
    }

    #[derive(Deserialize, Serialize, Debug)]
    struct File {
        d: Duration,
    }

    #[derive(Deserialize, Debug)]
    struct Legacy {
        #[serde(
            alias = "d_secs",
            deserialize_with = "Duration::deserialize_seconds_or_text"
        )]
        d: Duration,
    }

    #[test]
    fn serde_text_only_except_legacy_keys() {
        let f: File = toml::from_str("d = \"15s\"").unwrap();
        assert_eq!(f.d, Duration::from_secs(15));
        assert_eq!(toml::to_string(&f).unwrap().trim(), "d = \"15s\"");
        let e = toml::from_str::<File>("d = 15").unwrap_err().to_string();
        assert!(e.contains("\"15s\""), "{e}");
        let old: Legacy = toml::from_str("d_secs = 300").unwrap();
        assert_eq!(old.d, Duration::from_secs(300));
        let new: Legacy = toml::from_str("d = \"5m\"").unwrap();
        assert_eq!(new.d, Duration::from_secs(300));
        assert!(toml::from_str::<Legacy>("d_secs = -1").is_err());
    }

    proptest! {
        #[test]
        fn parser_never_panics(s in ".{0,24}") {
            let _ = s.parse::<Duration>();
        }

        #[test]
        fn display_round_trips(ms in 0u64..10_000_000_000) {
            let d = Duration::from_millis(ms);
            prop_assert_eq!(d.to_string().parse::<Duration>().unwrap(), d);
        }
    }
}
