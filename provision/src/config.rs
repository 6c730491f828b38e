//! The volunteer's settings file on the boot partition (`vantage.toml`):
//! reading it, checking it with messages a non-programmer understands, and
//! removing the one-time token from it after use.

use std::path::Path;

use vantage_proto::channel::{CONTINENTS, validate_continent, validate_tag};
use vantage_proto::enrol::Declared;

use vantage_proto::country;

/// Name of the settings file on the boot partition.
pub const FILE_NAME: &str = "vantage.toml";

/// The settings file as Windows saves it when Explorer hides known file
/// endings: the volunteer sees "vantage.toml", the disk has ".txt" on it.
pub const TXT_FILE_NAME: &str = "vantage.toml.txt";

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
    /// WPA passphrase (8 to 63 printable ASCII characters) or the 256-bit
    /// key itself as 64 hexadecimal digits; `None` for an open network.
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
        Ok(bytes) => decode(&bytes)
            .map_err(|p| Invalid { problems: vec![p] })
            .and_then(|text| parse(&text))
            .map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Invalid {
            problems: vec![format!("{FILE_NAME} could not be read: {e}.")],
        }),
    }
}

/// Where the settings file is: `preferred` if it exists; otherwise, when
/// `preferred` is the usual `vantage.toml`, a `vantage.toml.txt` beside it.
/// The note tells the volunteer which file was read when it is not the usual
/// one, or which one was ignored.
pub fn locate(preferred: &Path) -> (std::path::PathBuf, Option<String>) {
    let usual = preferred.file_name().is_some_and(|n| n == FILE_NAME);
    let txt = preferred.with_file_name(TXT_FILE_NAME);
    if !usual || !txt.exists() {
        return (preferred.to_owned(), None);
    }
    if preferred.exists() {
        let note = format!(
            "There are two settings files, {FILE_NAME} and {TXT_FILE_NAME}; the node reads \
             {FILE_NAME} and ignores {TXT_FILE_NAME}. Delete the one you do not mean, so that \
             your changes are not made to the wrong file."
        );
        return (preferred.to_owned(), Some(note));
    }
    let note = format!(
        "The settings were read from {TXT_FILE_NAME} (Windows hides the ending .txt, so it \
         shows as {FILE_NAME}); that works, there is nothing to change."
    );
    (txt, Some(note))
}

/// The text of the file, or a sentence on how to save it as plain UTF-8
/// text when it is something else (what editors save by default).
fn decode(bytes: &[u8]) -> Result<String, String> {
    let save_as = "Open it in a plain text editor (Notepad on Windows, TextEdit on a Mac) and \
                   save it again as plain text with the encoding UTF-8.";
    if bytes.starts_with(&[0xff, 0xfe])
        || bytes.starts_with(&[0xfe, 0xff])
        || bytes.iter().take(200).filter(|b| **b == 0).count() > 2
    {
        return Err(format!(
            "{FILE_NAME} was saved as UTF-16 (Windows Notepad calls it \"Unicode\"), which the \
             node cannot read. In Notepad choose File > Save As, set Encoding to UTF-8, and \
             save it under the same name."
        ));
    }
    if bytes.starts_with(b"{\\rtf") {
        return Err(format!(
            "{FILE_NAME} was saved as rich text (RTF, what TextEdit on a Mac saves by \
             default), not as plain text. In TextEdit choose Format > Make Plain Text, then \
             save it again under the same name (answer \"Use .toml\" if asked)."
        ));
    }
    if bytes.starts_with(b"PK\x03\x04") {
        return Err(format!(
            "{FILE_NAME} is a word-processor document (Word, Pages or LibreOffice), not a plain \
             text file. {save_as}"
        ));
    }
    match String::from_utf8(bytes.to_vec()) {
        Ok(text) => Ok(text),
        Err(e) => {
            let line = bytes[..e.utf8_error().valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1;
            Err(format!(
                "{FILE_NAME} is not a plain UTF-8 text file: line {line} has a character saved \
                 in an older encoding (Windows \"ANSI\" or Mac Roman, often a letter with an \
                 accent). {save_as}"
            ))
        }
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
    let table: toml::Table = text.parse().map_err(|_| Invalid {
        problems: syntax_problems(text),
    })?;
    let mut p = Problems::default();

    for key in table.keys() {
        if !KEYS.contains(&key.as_str()) {
            p.add(unknown_key(key, KEYS, ""));
        }
    }

    let hub = p.hub_setting(&table);
    let token = p.token_setting(&table);
    let country = p.country_setting(&table);
    let continent = p.continent_setting(&table);
    let city = p.city_setting(&table);
    let coordinates = p.coordinates_setting(&table);
    let tags = p.tags(&table);
    let hostname = p
        .string(&table, "hostname", "")
        .and_then(|h| p.hostname(&h));
    let wifi = p.wifi_setting(&table);

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

/// The checks of one top-level setting each: its value, or `None` with the
/// problem recorded (or nothing to record when an optional one is absent).
impl Problems {
    fn hub_setting(&mut self, table: &toml::Table) -> Option<String> {
        let hub = self
            .string(table, "hub", "")
            .and_then(|h| self.check_hub(&h));
        if !table.contains_key("hub") {
            self.add(
                "The setting hub is missing. Add the address of your network's hub that its \
                 administrator gave you, for example: hub = \"https://hub.example.net:8443\""
                    .into(),
            );
        }
        hub
    }

    fn token_setting(&mut self, table: &toml::Table) -> Option<String> {
        let t = self.string(table, "token", "")?;
        let t = t.trim().to_owned();
        if t.is_empty() {
            None
        } else if t.len() > 256 || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
            self.add("token looks damaged: it must be one word without spaces, exactly as the hub administrator gave it to you. Leave it out to ask for approval instead.".into());
            None
        } else {
            Some(t)
        }
    }

    fn country_setting(&mut self, table: &toml::Table) -> Option<String> {
        match self.string(table, "country", "") {
            Some(c) => self.country(&c, "country"),
            None => {
                if !table.contains_key("country") {
                    self.add(
                        "The setting country is missing. Add the two-letter code of the country \
                         the node is in, for example: country = \"DE\""
                            .into(),
                    );
                }
                None
            }
        }
    }

    fn continent_setting(&mut self, table: &toml::Table) -> Option<String> {
        let c = self.string(table, "continent", "")?;
        let up = c.trim().to_ascii_uppercase();
        if validate_continent(&up).is_ok() {
            Some(up)
        } else {
            self.add(format!(
                "continent must be one of {} (Africa, Antarctica, Asia, Europe, North America, \
                 Oceania, South America); {c:?} is not.",
                CONTINENTS.join(", ")
            ));
            None
        }
    }

    fn city_setting(&mut self, table: &toml::Table) -> Option<String> {
        let c = self.string(table, "city", "")?;
        let c = c.trim().to_owned();
        if c.is_empty() {
            None
        } else if c.chars().count() > 100 || c.chars().any(char::is_control) {
            self.add("city is too long or has odd characters: write just the city's name, for example: city = \"Berlin\"".into());
            None
        } else {
            Some(c)
        }
    }

    fn coordinates_setting(&mut self, table: &toml::Table) -> Option<(f64, f64)> {
        let lat = self.number(table, "latitude", -90.0, 90.0);
        let lon = self.number(table, "longitude", -180.0, 180.0);
        match (
            lat,
            lon,
            table.contains_key("latitude"),
            table.contains_key("longitude"),
        ) {
            (Some(a), Some(b), _, _) => Some((a, b)),
            (Some(_), None, _, false) | (None, Some(_), false, _) => {
                self.add("Give both latitude and longitude, or neither.".into());
                None
            }
            _ => None,
        }
    }

    fn wifi_setting(&mut self, table: &toml::Table) -> Option<Wifi> {
        match table.get("wifi") {
            None => None,
            Some(toml::Value::Table(w)) => self.wifi(w),
            Some(_) => {
                self.add("wifi must be a section: put [wifi] on a line of its own, then country, ssid and passphrase below it.".into());
                None
            }
        }
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
        if country::is_assigned(&up) {
            return Some(up);
        }
        self.add(match country::hint(&up) {
            Some(hint) => format!("{key} = {c:?} is not a country code: {hint}."),
            None if up.len() == 2 && up.bytes().all(|b| b.is_ascii_uppercase()) => format!(
                "{key} = {c:?} is not a country code in ISO 3166 (the list every network uses). \
                 Write the two-letter code of the country the node is in, for example \"DE\" \
                 for Germany or \"BR\" for Brazil."
            ),
            None => format!(
                "{key} must be the two-letter code of a country (ISO 3166), for example \"DE\" \
                 for Germany or \"BR\" for Brazil; {c:?} is not."
            ),
        });
        None
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
            Some(s) if s.is_empty() => {
                self.add("wifi.ssid is empty: write the name of your wireless network.".into());
                None
            }
            Some(s) => {
                // Wi-Fi limits the name to 32 bytes, not characters.
                let (chars, bytes) = (s.chars().count(), s.len());
                let why = if chars == bytes {
                    String::new()
                } else {
                    format!(
                        " ({chars} characters, but letters with accents and other non-English \
                         characters take two to four bytes each)"
                    )
                };
                self.add(format!(
                    "wifi.ssid can be at most 32 bytes long (a rule of Wi-Fi); {s:?} has \
                     {bytes}{why}. Copy the network's name exactly as your router shows it."
                ));
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
            if is_raw_psk(&p) {
                return Some(p);
            }
            let len = p.chars().count();
            // WPA defines a passphrase as 8 to 63 characters from ASCII 32 to 126.
            if let Some(at) = p.chars().position(|c| !(' '..='~').contains(&c)) {
                self.add(format!(
                    "wifi.passphrase may only use printable ASCII characters: English letters \
                     without accents, digits, spaces and the punctuation of a US keyboard. \
                     This is a rule of WPA; character number {} of the password is not one of \
                     them. Check that the password was copied exactly, or give the network's \
                     key as 64 hexadecimal digits instead (many routers show it).",
                    at + 1
                ));
                None
            } else if (8..=63).contains(&len) {
                Some(p)
            } else {
                self.add(format!(
                    "wifi.passphrase must be the network's password, 8 to 63 characters \
                     long (it has {len}), or the network's key as 64 hexadecimal digits."
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

/// The most syntax errors reported from one file; beyond that the file is
/// probably not a settings file at all.
const MAX_SYNTAX_ERRORS: usize = 20;

/// Every syntax error in the file, one per line. The parser stops at the
/// first, so each line found broken is blanked and the rest parsed again:
/// the volunteer fixes all of them with one trip of the card to the PC.
fn syntax_problems(text: &str) -> Vec<String> {
    let original: Vec<&str> = text.split('\n').collect();
    let mut lines: Vec<String> = original.iter().map(|l| (*l).to_owned()).collect();
    let mut out = Vec::new();
    let mut curly = false;
    while out.len() < MAX_SYNTAX_ERRORS {
        let joined = lines.join("\n");
        let Err(e) = joined.parse::<toml::Table>() else {
            break;
        };
        let what = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
        let what = what.trim_end_matches('.');
        let Some(span) = e.span() else {
            out.push(format!("{FILE_NAME} cannot be read: {what}."));
            break;
        };
        let at = span.start.min(joined.len());
        let idx = joined[..at].matches('\n').count();
        let idx = idx.min(lines.len() - 1);
        let shown: String = original[idx]
            .trim()
            .chars()
            .filter(|c| !c.is_control())
            .take(60)
            .collect();
        let quotes = has_curly_quotes(original[idx]);
        curly |= quotes;
        let hint = if quotes {
            " It has typographic quotes (\u{201c} \u{201d} or \u{2018} \u{2019}), as word \
             processors and phone keyboards write them: use straight double quotes \" instead."
        } else {
            ""
        };
        out.push(format!(
            "{FILE_NAME} cannot be read at line {} ({shown}): {what}.{hint}",
            idx + 1
        ));
        if lines[idx].trim().is_empty() {
            // The error is not on a line of its own (an unclosed bracket or
            // string further up); blanking more would only invent errors.
            break;
        }
        lines[idx].clear();
    }
    if out.is_empty() {
        // The parser refused the whole file but no single line: say so.
        out.push(format!("{FILE_NAME} cannot be read."));
    }
    out.push(format!(
        "Each setting is one line like  name = \"value\"  with the value in straight double \
         quotes{} (numbers and lists without quotes); lines starting with # are comments.",
        if curly {
            " (\", not \u{201c} or \u{201d})"
        } else {
            ""
        }
    ));
    out
}

fn has_curly_quotes(line: &str) -> bool {
    line.contains([
        '\u{201c}', '\u{201d}', '\u{201e}', '\u{2018}', '\u{2019}', '\u{201a}', '\u{00ab}',
        '\u{00bb}',
    ])
}

/// True for a WPA key given as 64 hexadecimal digits instead of a passphrase.
pub fn is_raw_psk(p: &str) -> bool {
    p.len() == 64 && p.bytes().all(|b| b.is_ascii_hexdigit())
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
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("line 2 (country = DE)"), "{}", p[0]);
        assert!(p[1].contains("double quotes"), "{}", p[1]);
    }

    #[test]
    fn every_syntax_error_is_reported_at_once() {
        let p = problems(
            "hub = \"https://h\"\ncountry = DE\ncity = \"Berlin\"\ntags = [fiber]\nhostname = \"x\"\n",
        );
        let all = p.join("\n");
        assert!(all.contains("line 2"), "{all}");
        assert!(all.contains("line 4"), "{all}");
        assert_eq!(p.len(), 3, "{all}");
    }

    #[test]
    fn curly_quotes_get_their_own_hint() {
        let p = problems("hub = \"https://h\"\ncountry = \u{201c}DE\u{201d}\n");
        assert!(p[0].contains("line 2"), "{}", p[0]);
        assert!(p[0].contains("typographic quotes"), "{}", p[0]);
    }

    #[test]
    fn files_that_are_not_plain_utf8_say_how_to_save_them() {
        let utf16: Vec<u8> = [0xff, 0xfe]
            .into_iter()
            .chain(
                "country = \"DE\"\n"
                    .encode_utf16()
                    .flat_map(u16::to_le_bytes),
            )
            .collect();
        assert!(decode(&utf16).unwrap_err().contains("UTF-16"));
        let rtf = b"{\\rtf1\\ansi country = \"DE\"}";
        assert!(decode(rtf).unwrap_err().contains("Make Plain Text"));
        let latin1 = b"hub = \"https://h\"\ncity = \"K\xf6ln\"\n";
        let e = decode(latin1).unwrap_err();
        assert!(e.contains("line 2") && e.contains("UTF-8"), "{e}");
        assert_eq!(decode("\u{feff}x".as_bytes()).unwrap(), "\u{feff}x");
    }

    #[test]
    fn country_codes_are_checked_against_iso_3166() {
        let base = "hub = \"https://h\"\ncountry = ";
        let p = problems(&format!("{base}\"UK\"\n"));
        assert!(p[0].contains("\"GB\""), "{p:?}");
        let p = problems(&format!("{base}\"el\"\n"));
        assert!(p[0].contains("\"GR\""), "{p:?}");
        let p = problems(&format!("{base}\"EN\"\n"));
        assert!(p[0].contains("English language"), "{p:?}");
        let p = problems(&format!("{base}\"XK\"\n"));
        assert!(p[0].contains("not a country code in ISO 3166"), "{p:?}");
        let p = problems(&format!(
            "{base}\"GB\"\n[wifi]\ncountry = \"UK\"\nssid = \"x\"\n"
        ));
        assert!(p[0].starts_with("wifi.country = \"UK\""), "{p:?}");
        assert_eq!(parse(&format!("{base}\"gb\"\n")).unwrap().country, "GB");
    }

    #[test]
    fn wifi_lengths_are_counted_as_the_messages_say() {
        let wifi = |ssid: &str, pass: &str| {
            parse(&format!(
                "hub = \"https://h\"\ncountry = \"DE\"\n[wifi]\ncountry = \"DE\"\nssid = \"{ssid}\"\npassphrase = \"{pass}\"\n"
            ))
        };
        let psk = "0123456789abcdef".repeat(4);
        assert_eq!(
            wifi("Home", &psk).unwrap().wifi.unwrap().passphrase,
            Some(psk.clone())
        );
        let p = wifi("Home", &format!("{psk}0")).unwrap_err().problems;
        assert!(p[0].contains("(it has 65)"), "{p:?}");
        let p = wifi("Home", "k\u{e4}se").unwrap_err().problems;
        assert!(
            p[0].contains("printable ASCII") && p[0].contains("number 2"),
            "{p:?}"
        );
        let p = wifi("Home", "1234567").unwrap_err().problems;
        assert!(p[0].contains("(it has 7)"), "{p:?}");
        // 16 characters, 32 bytes: the most a network name may have.
        assert!(wifi(&"\u{e9}".repeat(16), "12345678").is_ok());
        let p = wifi(&"\u{e9}".repeat(17), "12345678").unwrap_err().problems;
        assert!(p[0].contains("has 34 (17 characters"), "{p:?}");
    }

    #[test]
    fn a_txt_ending_is_found_and_the_usual_name_wins() {
        let dir = tempfile::tempdir().unwrap();
        let usual = dir.path().join(FILE_NAME);
        let txt = dir.path().join(TXT_FILE_NAME);
        assert_eq!(locate(&usual), (usual.clone(), None));
        std::fs::write(&txt, "").unwrap();
        let (path, note) = locate(&usual);
        assert_eq!(path, txt);
        assert!(note.unwrap().contains("read from vantage.toml.txt"));
        std::fs::write(&usual, "").unwrap();
        let (path, note) = locate(&usual);
        assert_eq!(path, usual);
        let note = note.unwrap();
        assert!(
            note.contains("reads vantage.toml and ignores vantage.toml.txt"),
            "{note}"
        );
        // A file named on the command line is taken as it is.
        let other = dir.path().join("other.toml");
        assert_eq!(locate(&other), (other.clone(), None));
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
