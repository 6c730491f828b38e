//! The volunteer's settings file on the boot partition (`vantage.toml`):
//! reading it, checking it with messages a non-programmer understands, and
//! removing the one-time token from it after use.

use std::path::Path;

use vantage_proto::channel::{CONTINENTS, validate_continent, validate_country, validate_tag};
use vantage_proto::enrol::Declared;

/// Name of the settings file on the boot partition.
pub const FILE_NAME: &str = "vantage.toml";

/// The most tags a volunteer may declare.
pub const MAX_TAGS: usize = 16;

/// The settings a volunteer wrote, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Base URL of the hub (`https://...`).
    pub hub: String,
    /// One-time enrolment token, if the volunteer was given one.
    pub token: Option<String>,
    /// ISO 3166-1 alpha-2 country code, upper case.
    pub country: String,
    /// Continent code (`EU`, `SA`, ...), if the volunteer gave it.
    pub continent: Option<String>,
    /// City, free text.
    pub city: Option<String>,
    /// Latitude and longitude in degrees.
    pub coordinates: Option<(f64, f64)>,
    /// Tags.
    pub tags: Vec<String>,
    /// Host name for the node.
    pub hostname: Option<String>,
    /// Wireless network to join.
    pub wifi: Option<Wifi>,
}

/// A wireless network (for boards without Ethernet, such as the Pi Zero W).
#[derive(Clone, PartialEq, Eq)]
pub struct Wifi {
    /// Regulatory country (ISO 3166-1 alpha-2), decides which channels may be used.
    pub country: String,
    /// Network name.
    pub ssid: String,
    /// WPA passphrase (8 to 63 characters); `None` for an open network.
    pub passphrase: Option<String>,
}

impl std::fmt::Debug for Wifi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wifi")
            .field("country", &self.country)
            .field("ssid", &self.ssid)
            .field("passphrase", &self.passphrase.as_ref().map(|_| "(hidden)"))
            .finish()
    }
}

impl Settings {
    /// What the node declares about itself when it enrols.
    pub fn declared(&self) -> Declared {
        Declared {
            country: self.country.clone(),
            continent: self.continent.clone(),
            city: self.city.clone(),
            latitude: self.coordinates.map(|c| c.0),
            longitude: self.coordinates.map(|c| c.1),
            tags: self.tags.clone(),
            hostname: self.hostname.clone(),
            ..Declared::default()
        }
    }
}

/// Everything wrong with the settings file, one plain sentence each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.join("\n"))]
pub struct Invalid {
    /// The problems, each a sentence that says what to change.
    pub problems: Vec<String>,
}

/// Reads and checks the settings file. `Ok(None)` when there is no file.
pub fn load(path: &Path) -> Result<Option<Settings>, Invalid> {
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => parse(&text).map(Some),
            Err(_) => Err(Invalid {
                problems: vec![format!(
                    "{FILE_NAME} is not a plain text file (UTF-8). Save it again as plain text, \
                     for example with Notepad or TextEdit in plain-text mode."
                )],
            }),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Invalid {
            problems: vec![format!("{FILE_NAME} could not be read: {e}.")],
        }),
    }
}

const KEYS: &[&str] = &[
    "hub",
    "token",
    "country",
    "continent",
    "city",
    "latitude",
    "longitude",
    "tags",
    "hostname",
    "wifi",
];
const WIFI_KEYS: &[&str] = &["country", "ssid", "passphrase"];

/// Parses and checks the text of a settings file, collecting every problem.
pub fn parse(text: &str) -> Result<Settings, Invalid> {
    // Some Windows editors start a file with a byte-order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| Invalid {
        problems: vec![syntax_problem(text, &e)],
    })?;
    let mut p = Problems::default();

    for key in table.keys() {
        if !KEYS.contains(&key.as_str()) {
            p.add(unknown_key(key, KEYS, ""));
        }
    }

    let hub = p.string(&table, "hub", "").and_then(|h| p.check_hub(&h));
    if !table.contains_key("hub") {
        p.add(
            "The setting hub is missing. Add the address of your network's hub that its \
             administrator gave you, for example: hub = \"https://hub.example.net:8443\""
                .into(),
        );
    }
    let token = p.string(&table, "token", "").and_then(|t| {
        let t = t.trim().to_owned();
        if t.is_empty() {
            None
        } else if t.len() > 256 || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
            p.add("token looks damaged: it must be one word without spaces, exactly as the hub administrator gave it to you. Leave it out to ask for approval instead.".into());
            None
        } else {
            Some(t)
        }
    });
    let country = match p.string(&table, "country", "") {
        Some(c) => p.country(&c, "country"),
        None => {
            if !table.contains_key("country") {
                p.add(
                    "The setting country is missing. Add the two-letter code of the country \
                     the node is in, for example: country = \"DE\""
                        .into(),
                );
            }
            None
        }
    };
    let continent = p.string(&table, "continent", "").and_then(|c| {
        let up = c.trim().to_ascii_uppercase();
        if validate_continent(&up).is_ok() {
            Some(up)
        } else {
            p.add(format!(
                "continent must be one of {} (Africa, Antarctica, Asia, Europe, North America, \
                 Oceania, South America); {c:?} is not.",
                CONTINENTS.join(", ")
            ));
            None
        }
    });
    let city = p.string(&table, "city", "").and_then(|c| {
        let c = c.trim().to_owned();
        if c.is_empty() {
            None
        } else if c.chars().count() > 100 || c.chars().any(char::is_control) {
            p.add("city is too long or has odd characters: write just the city's name, for example: city = \"Berlin\"".into());
            None
        } else {
            Some(c)
        }
    });
    let lat = p.number(&table, "latitude", -90.0, 90.0);
    let lon = p.number(&table, "longitude", -180.0, 180.0);
    let coordinates = match (
        lat,
        lon,
        table.contains_key("latitude"),
        table.contains_key("longitude"),
    ) {
        (Some(a), Some(b), _, _) => Some((a, b)),
        (Some(_), None, _, false) | (None, Some(_), false, _) => {
            p.add("Give both latitude and longitude, or neither.".into());
            None
        }
        _ => None,
    };
    let tags = p.tags(&table);
    let hostname = p
        .string(&table, "hostname", "")
        .and_then(|h| p.hostname(&h));
    let wifi = match table.get("wifi") {
        None => None,
        Some(toml::Value::Table(w)) => p.wifi(w),
        Some(_) => {
            p.add("wifi must be a section: put [wifi] on a line of its own, then country, ssid and passphrase below it.".into());
            None
        }
    };

    if !p.0.is_empty() {
        return Err(Invalid { problems: p.0 });
    }
    match (hub, country) {
        (Some(hub), Some(country)) => Ok(Settings {
            hub,
            token,
            country,
            continent,
            city,
            coordinates,
            tags,
            hostname,
            wifi,
        }),
        _ => unreachable!("a missing hub or country is recorded as a problem"),
    }
}

#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn add(&mut self, s: String) {
        self.0.push(s);
    }

    fn string(&mut self, t: &toml::Table, key: &str, section: &str) -> Option<String> {
        match t.get(key)? {
            toml::Value::String(s) => Some(s.clone()),
            _ => {
                self.add(format!(
                    "{section}{key} must be text in double quotes, for example: {key} = \"...\""
                ));
                None
            }
        }
    }

    fn number(&mut self, t: &toml::Table, key: &str, min: f64, max: f64) -> Option<f64> {
        let v = match t.get(key)? {
            toml::Value::Float(f) => *f,
            toml::Value::Integer(i) => *i as f64,
            _ => {
                self.add(format!(
                    "{key} must be a number of degrees without quotes, for example: {key} = 52.52"
                ));
                return None;
            }
        };
        if (min..=max).contains(&v) {
            Some(v)
        } else {
            self.add(format!(
                "{key} must be between {min} and {max} degrees; {v} is not."
            ));
            None
        }
    }

    fn check_hub(&mut self, h: &str) -> Option<String> {
        let h = h.trim();
        let rest = match h.strip_prefix("https://") {
            Some(r) => r,
            None => {
                self.add(format!(
                    "hub must start with https:// (it is {h:?}). Copy the address exactly as \
                     the hub administrator gave it, for example: hub = \"https://hub.example.net:8443\""
                ));
                return None;
            }
        };
        let authority = rest.split('/').next().unwrap_or("");
        let host_ok = !authority.is_empty()
            && !authority.contains('@')
            && authority
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
        if !host_ok || rest.contains(['?', '#', ' ']) {
            self.add(format!(
                "hub {h:?} is not a valid address. It should look like https://hub.example.net:8443"
            ));
            return None;
        }
        Some(h.trim_end_matches('/').to_owned())
    }

    fn country(&mut self, c: &str, key: &str) -> Option<String> {
        let up = c.trim().to_ascii_uppercase();
        if validate_country(&up).is_ok() {
            Some(up)
        } else {
            self.add(format!(
                "{key} must be the two-letter code of a country (ISO 3166), for example \"DE\" \
                 for Germany or \"BR\" for Brazil; {c:?} is not."
            ));
            None
        }
    }

    fn tags(&mut self, t: &toml::Table) -> Vec<String> {
        let Some(v) = t.get("tags") else {
            return Vec::new();
        };
        let Some(list) = v.as_array() else {
            self.add(
                "tags must be a list in square brackets, for example: tags = [\"fiber\", \"home\"]"
                    .into(),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in list {
            match item.as_str() {
                Some(s) if validate_tag(s).is_ok() => {
                    if !out.iter().any(|o| o == s) {
                        out.push(s.to_owned());
                    }
                }
                Some(s) => self.add(format!(
                    "The tag {s:?} is not allowed: use 1 to 32 small letters, digits and \
                     dashes, starting with a letter or digit (for example \"fiber\" or \"dsl-50\")."
                )),
                None => self.add(
                    "Each tag must be text in double quotes, for example: tags = [\"fiber\"]"
                        .into(),
                ),
            }
        }
        if out.len() > MAX_TAGS {
            self.add(format!(
                "At most {MAX_TAGS} tags are allowed; there are {}.",
                out.len()
            ));
        }
        out
    }

    fn hostname(&mut self, h: &str) -> Option<String> {
        let h = h.trim();
        let ok = !h.is_empty()
            && h.len() <= 63
            && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !h.starts_with('-')
            && !h.ends_with('-');
        if ok {
            Some(h.to_ascii_lowercase())
        } else {
            self.add(format!(
                "hostname {h:?} is not allowed: use 1 to 63 letters, digits and dashes, not \
                 starting or ending with a dash (for example \"pi-kitchen\")."
            ));
            None
        }
    }

    fn wifi(&mut self, w: &toml::Table) -> Option<Wifi> {
        for key in w.keys() {
            if !WIFI_KEYS.contains(&key.as_str()) {
                self.add(unknown_key(key, WIFI_KEYS, "wifi."));
            }
        }
        let country = match self.string(w, "country", "wifi.") {
            Some(c) => self.country(&c, "wifi.country"),
            None => {
                if !w.contains_key("country") {
                    self.add("wifi.country is missing: add the two-letter code of the country the node is in (it decides which radio channels may be used), for example: country = \"DE\" under [wifi].".into());
                }
                None
            }
        };
        let ssid = match self.string(w, "ssid", "wifi.") {
            Some(s) if !s.is_empty() && s.len() <= 32 => Some(s),
            Some(_) => {
                self.add(
                    "wifi.ssid must be the name of your wireless network, 1 to 32 characters."
                        .into(),
                );
                None
            }
            None => {
                if !w.contains_key("ssid") {
                    self.add("wifi.ssid is missing: add the name of your wireless network under [wifi], for example: ssid = \"MyHomeNetwork\"".into());
                }
                None
            }
        };
        let passphrase = self.string(w, "passphrase", "wifi.").and_then(|p| {
            let len = p.len();
            let ok =
                p.is_ascii() && !p.chars().any(|c| c.is_ascii_control()) && (8..=63).contains(&len);
            if ok {
                Some(p)
            } else {
                self.add(format!(
                    "wifi.passphrase must be the network's password, 8 to 63 characters \
                     without accents or special letters (it has {len})."
                ));
                None
            }
        });
        if w.contains_key("passphrase") && passphrase.is_none() {
            return None;
        }
        Some(Wifi {
            country: country?,
            ssid: ssid?,
            passphrase,
        })
    }
}

fn unknown_key(key: &str, known: &[&str], section: &str) -> String {
    let close = known
        .iter()
        .find(|k| edit_distance(k, &key.to_ascii_lowercase()) <= 2);
    match close {
        Some(k) => format!("Unknown setting {section}{key}: did you mean {section}{k}?"),
        None => format!(
            "Unknown setting {section}{key}. The settings are: {}.",
            known
                .iter()
                .map(|k| format!("{section}{k}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn syntax_problem(text: &str, e: &toml::de::Error) -> String {
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
    let what = e.message();
    let hint = "Each setting is one line like  name = \"value\"  with the value in double \
                quotes (numbers and lists without quotes); lines starting with # are comments.";
    match line {
        Some(l) => format!("{FILE_NAME} cannot be read at line {l}: {what}. {hint}"),
        None => format!("{FILE_NAME} cannot be read: {what}. {hint}"),
    }
}

/// The text of a settings file with its top-level `token = ...` line removed
/// (everything else, comments included, kept byte for byte). `None` when
/// there is no such line.
pub fn without_token(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut in_table = false;
    let mut removed = false;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            in_table = true;
        }
        if !in_table && is_token_line(trimmed) {
            removed = true;
            continue;
        }
        out.push_str(line);
    }
    removed.then_some(out)
}

fn is_token_line(trimmed: &str) -> bool {
    let key = trimmed
        .trim_start_matches('\u{feff}')
        .split('=')
        .next()
        .map(|k| k.trim().trim_matches(['"', '\'']))
        .unwrap_or("");
    key == "token" && trimmed.contains('=')
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../vantage.toml.example");

    fn problems(text: &str) -> Vec<String> {
        parse(text).unwrap_err().problems
    }

    #[test]
    fn shipped_example_is_valid_once_filled_in() {
        let s = parse(EXAMPLE).unwrap();
        assert_eq!(s.hub, "https://hub.example.net:8443");
        assert_eq!(s.country, "DE");
        assert_eq!(s.token, None);
        assert!(s.wifi.is_none());
    }

    #[test]
    fn full_file() {
        let s = parse(
            r#"
hub = "https://hub.example.net:8443/"
token = "tok-123"
country = "de"
continent = "eu"
city = "Berlin"
latitude = 52.52
longitude = 13
tags = ["fiber", "home", "fiber"]
hostname = "Pi-Kitchen"
[wifi]
country = "DE"
ssid = "My \"Net\""
passphrase = "correct horse"
"#,
        )
        .unwrap();
        assert_eq!(s.hub, "https://hub.example.net:8443");
        assert_eq!(s.token.as_deref(), Some("tok-123"));
        assert_eq!(s.country, "DE");
        assert_eq!(s.continent.as_deref(), Some("EU"));
        assert_eq!(s.coordinates, Some((52.52, 13.0)));
        assert_eq!(s.tags, ["fiber", "home"]);
        assert_eq!(s.hostname.as_deref(), Some("pi-kitchen"));
        let w = s.wifi.clone().unwrap();
        assert_eq!(w.ssid, "My \"Net\"");
        assert!(!format!("{w:?}").contains("horse"));
        let d = s.declared();
        assert_eq!(d.country, "DE");
        assert_eq!(d.longitude, Some(13.0));
        assert_eq!(d.continent.as_deref(), Some("EU"));
        assert!(
            problems("hub = \"https://h\"\ncountry = \"DE\"\ncontinent = \"Europe\"\n")[0]
                .starts_with("continent must be one of AF, AN")
        );
    }

    #[test]
    fn every_problem_is_reported_in_plain_words() {
        let p = problems(
            r#"
hub = "http://hub"
contry = "DE"
tags = ["Fiber"]
latitude = 95
[wifi]
ssid = "x"
passphrase = "short"
"#,
        );
        let all = p.join("\n");
        assert!(all.contains("hub must start with https://"), "{all}");
        assert!(all.contains("did you mean country?"), "{all}");
        assert!(all.contains("country is missing"), "{all}");
        assert!(all.contains("tag \"Fiber\""), "{all}");
        assert!(all.contains("latitude must be between"), "{all}");
        assert!(all.contains("wifi.country is missing"), "{all}");
        assert!(all.contains("wifi.passphrase"), "{all}");
        assert_eq!(p.len(), 7, "{all}");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let p = problems("hub = \"https://h\"\ncountry = DE\n");
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("line 2"), "{}", p[0]);
        assert!(p[0].contains("double quotes"), "{}", p[0]);
    }

    #[test]
    fn windows_files_are_fine() {
        let text = "\u{feff}token = \"t\"\r\nhub = \"https://h\"\r\ncountry = \"FR\"\r\n";
        let s = parse(text).unwrap();
        assert_eq!((s.token.as_deref(), s.country.as_str()), (Some("t"), "FR"));
        let clean = without_token(text).unwrap();
        assert_eq!(clean, "hub = \"https://h\"\r\ncountry = \"FR\"\r\n");
    }

    #[test]
    fn only_one_coordinate() {
        let p = problems("hub = \"https://h\"\ncountry = \"DE\"\nlatitude = 1\n");
        assert_eq!(p, ["Give both latitude and longitude, or neither."]);
    }

    #[test]
    fn token_line_is_scrubbed_and_the_rest_kept() {
        let text = "# my node\nhub = \"https://h\"\n  token = \"abc\" # one-time\ncountry = \"DE\"\n[wifi]\ntoken = \"x\"\n";
        let out = without_token(text).unwrap();
        assert_eq!(
            out,
            "# my node\nhub = \"https://h\"\ncountry = \"DE\"\n[wifi]\ntoken = \"x\"\n"
        );
        assert_eq!(without_token(&out), None);
        assert_eq!(without_token("# token = \"abc\"\n"), None);
        assert_eq!(without_token("tokens = 1\n"), None);
        let crlf = without_token("token=\"a\"\r\nhub = \"https://h\"\r\n").unwrap();
        assert_eq!(crlf, "hub = \"https://h\"\r\n");
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(text in ".{0,400}") {
            let _ = parse(&text);
        }

        #[test]
        fn scrubbed_file_has_no_token_and_keeps_settings(
            token in "[A-Za-z0-9_-]{1,40}",
            city in "[A-Za-z ]{1,20}",
        ) {
            let text = format!("hub = \"https://h:8443\"\ntoken = \"{token}\"\ncountry = \"DE\"\ncity = \"{city}\"\n");
            let before = parse(&text).unwrap();
            let after = parse(&without_token(&text).unwrap()).unwrap();
            proptest::prop_assert_eq!(&after.token, &None);
            proptest::prop_assert_eq!(Settings { token: None, ..before }, after);
        }
    }
}
