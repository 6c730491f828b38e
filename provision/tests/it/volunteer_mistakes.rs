//! What volunteers actually put on the boot partition, one case per row:
//! the file (name and bytes, as an editor on Windows or macOS saves it),
//! what `vantage-provision --once` must say in vantage-status.txt, and what
//! the file must hold afterwards. Every row runs against the real hub on
//! loopback (some on a node that was enrolled and revoked first). Add a row
//! for every mistake seen in the field.

use crate::support::{Node, hub, stderr};
use vantage_testkit::Hub;
/// The file's bytes. `{hub}` and `{token}` in text are replaced by the test
/// hub's address and a fresh one-time token.
enum Input {
    /// UTF-8 text.
    Text(&'static str),
    /// Text saved as UTF-16 little-endian with a byte-order mark (Notepad's "Unicode").
    Utf16(&'static str),
    /// Raw bytes.
    Bytes(&'static [u8]),
}

/// The node before the volunteer's file goes on the card.
enum Before {
    /// Freshly flashed.
    Fresh,
    /// Enrolled, then revoked at the hub; its agent saw the hub refuse it
    /// and left its marker.
    Revoked,
}

/// The file after the run.
enum After {
    /// Byte for byte as the volunteer wrote it.
    Same,
    /// The same without its `token = ...` line (the token was used).
    WithoutToken,
}

struct Case {
    name: &'static str,
    before: Before,
    file: &'static str,
    input: Input,
    /// 0 enrolled, 2 the volunteer must change something, 75 not yet (waiting).
    exit: i32,
    /// Phrases the status file must contain.
    status: &'static [&'static str],
    after: After,
}

const GOOD: &str = "hub = \"{hub}\"\ncountry = \"DE\"\n";

const CASES: &[Case] = &[
    Case {
        name: "Windows Explorer hid the .txt ending",
        before: Before::Fresh,
        file: "vantage.toml.txt",
        input: Input::Text("hub = \"{hub}\"\ntoken = \"{token}\"\ncountry = \"DE\"\n"),
        exit: 0,
        status: &["ENROLLED", "read from vantage.toml.txt"],
        after: After::WithoutToken,
    },
    Case {
        name: "Notepad: byte-order mark and CRLF line ends",
        before: Before::Fresh,
        file: "vantage.toml",
        input: Input::Text(
            "\u{feff}# my node\r\nhub = \"{hub}\"\r\ntoken = \"{token}\"\r\ncountry = \"DE\"\r\n",
        ),
        exit: 0,
        status: &["ENROLLED"],
        after: After::WithoutToken,
    },
    Case {
        name: "the token says DE, the file FR",
        before: Before::Fresh,
        file: "vantage.toml",
        input: Input::Text("hub = \"{hub}\"\ntoken = \"{token}\"\ncountry = \"FR\"\n"),
        exit: 0,
        status: &[
            "ENROLLED",
            "In force: country DE",
            "Not applied (yet) from vantage.toml: country = \"FR\"",
            "the token's values win",
        ],
        after: After::WithoutToken,
    },
    Case {
        name: "UK is not ISO 3166",
        before: Before::Fresh,
        file: "vantage.toml",
        input: Input::Text("hub = \"{hub}\"\ncountry = \"UK\"\n"),
        exit: 2,
        status: &[
            "PROBLEM",
            "country = \"UK\" is not a country code",
            "ISO code is \"GB\"",
        ],
        after: After::Same,
    },
    Case {
        name: "EN is a language",
        before: Before::Fresh,
        file: "vantage.toml",
        input: Input::Text("hub = \"{hub}\"\ncountry = \"en\"\n"),
        exit: 2,
        status: &["PROBLEM", "English language"],
        after: After::Same,
    },
    Case {
        name: "EL is the EU's abbreviation for Greece",
        before: Before::Fresh,
        file: "vantage.toml",
        input: Input::Text("hub = \"{hub}\"\ncountry = \"EL\"\n"),
        exit: 2,
        status: &["PROBLEM", "Greece's ISO code is \"GR\""],
        after: After::Same,
    },
    Case {
        name: "unassigned two-letter code",
        before: Before::Fresh,
        file: "vantage.toml",
        input: Input::Text("hub = \"{hub}\"\ncountry = \"XX\"\n"),
        exit: 2,
        status: &["PROBLEM", "not a country code in ISO 3166"],
        after: After::Same,
    },
    Case {
        name: "UK as the Wi-Fi country",
        before: Before::Fresh,
        file: "vantage.toml",
        input: Input::Text(
            "hub = \"{hub}\"\ncountry = \"GB\"\n[wifi]\ncountry = \"UK\"\nssid = \"Home\"\n",
        ),
        exit: 2,
        status: &["PROBLEM", "wifi.country = \"UK\"", "\"GB\""],
        after: After::Same,
    },
    Case {
        name: "WPA key as 64 hex digits",
        before: Before::Fresh,
        file: "vantage.toml",
        input: Input::Text(
            "hub = \"{hub}\"\ncountry = \"DE\"\n[wifi]\ncountry = \"DE\"\nssid = \"Home\"\n\
             passphrase = \"f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e\"\n",
        ),
        exit: 75,
        status: &["WAITING FOR APPROVAL"],
        after: After::Same,
    },
    Case {
        name: "password with an umlaut",
        before: Before::Fresh,
        file: "vantage.toml",
        input: Input::Text(
            "hub = \"{hub}\"\ncountry = \"DE\"\n[wifi]\ncountry = \"DE\"\nssid = \"Home\"\n\
             passphrase = \"K\u{e4}sebrot99\"\n",
        ),
        exit: 2,
        status: &["printable ASCII", "rule of WPA", "character number 2"],
        after: After::Same,
    },
    Case {
        name: "password too short, counted in characters",
        before: Before::Fresh,
        file: "vantage.toml",
        input: Input::Text(
            "hub = \"{hub}\"\ncountry = \"DE\"\n[wifi]\ncountry = \"DE\"\nssid = \"Home\"\n\
             passphrase = \"geheim\"\n",
        ),
        exit: 2,
        status: &["8 to 63 characters long (it has 6)"],
        after: After::Same,
    },
    Case {
        name: "network name of 32 characters but 39 bytes",
        before: Before::Fresh,
        file: "vantage.toml",
        input: Input::Text(
            "hub = \"{hub}\"\ncountry = \"FR\"\n[wifi]\ncountry = \"FR\"\n\
             ssid = \"R\u{e9}seau \u{e9}t\u{e9} \u{e0} l'\u{e9}cole \u{e9}l\u{e9}mentaire\"\n",
        ),
        exit: 2,
        status: &["at most 32 bytes", "has 39 (32 characters"],
        after: After::Same,
    },
    Case {
        name: "two syntax errors, both reported",
        before: Before::Fresh,
        file: "vantage.toml",
        input: Input::Text(
            "hub = \"{hub}\"\ncountry = DE\ncity = \"Berlin\"\ntags = [fiber]\n",
        ),
        exit: 2,
        status: &["at line 2 (country = DE)", "at line 4 (tags = [fiber])"],
        after: After::Same,
    },
    Case {
        name: "curly quotes from a word processor",
        before: Before::Fresh,
        file: "vantage.toml",
        input: Input::Text("hub = \u{201c}{hub}\u{201d}\ncountry = \u{201c}DE\u{201d}\n"),
        exit: 2,
        status: &["at line 1", "at line 2", "typographic quotes"],
        after: After::Same,
    },
    Case {
        name: "saved as UTF-16 (Notepad's \"Unicode\")",
        before: Before::Fresh,
        file: "vantage.toml",
        input: Input::Utf16("hub = \"https://hub.example.net\"\ncountry = \"DE\"\n"),
        exit: 2,
        status: &["UTF-16", "set Encoding to UTF-8"],
        after: After::Same,
    },
    Case {
        name: "saved as rich text (TextEdit's default)",
        before: Before::Fresh,
        file: "vantage.toml",
        input: Input::Bytes(b"{\\rtf1\\ansi\\ansicpg1252\\cocoartf2709\n{\\fonttbl}\nhub = \"https://hub.example.net\"\\\n}"),
        exit: 2,
        status: &["rich text", "Make Plain Text"],
        after: After::Same,
    },
    Case {
        name: "saved in Windows-1252 (\"ANSI\")",
        before: Before::Fresh,
        file: "vantage.toml",
        input: Input::Bytes(b"hub = \"https://hub.example.net\"\ncountry = \"DE\"\ncity = \"K\xf6ln\"\n"),
        exit: 2,
        status: &["older encoding", "line 3"],
        after: After::Same,
    },
    Case {
        name: "a Word document renamed",
        before: Before::Fresh,
        file: "vantage.toml",
        input: Input::Bytes(b"PK\x03\x04\x14\x00\x06\x00"),
        exit: 2,
        status: &["word-processor document"],
        after: After::Same,
    },
    Case {
        name: "http instead of https",
        before: Before::Fresh,
        file: "vantage.toml",
        input: Input::Text("hub = \"http://hub.example.net\"\ncountry = \"DE\"\n"),
        exit: 2,
        status: &["hub must start with https://"],
        after: After::Same,
    },
    Case {
        name: "revoked: a new token, but the reset file forgotten",
        before: Before::Revoked,
        file: "vantage.toml",
        input: Input::Text("hub = \"{hub}\"\ntoken = \"{token}\"\ncountry = \"DE\"\n"),
        exit: 2,
        status: &["REVOKED", "no file named vantage-reset"],
        after: After::Same,
    },
    Case {
        name: "the good file, for contrast",
        before: Before::Fresh,
        file: "vantage.toml",
        input: Input::Text(GOOD),
        exit: 75,
        status: &["WAITING FOR APPROVAL"],
        after: After::Same,
    },
];

fn bytes(input: &Input, hub: &str, token: &str) -> Vec<u8> {
    let fill = |t: &str| t.replace("{hub}", hub).replace("{token}", token);
    match input {
        Input::Text(t) => fill(t).into_bytes(),
        Input::Utf16(t) => [0xff, 0xfe]
            .into_iter()
            .chain(fill(t).encode_utf16().flat_map(u16::to_le_bytes))
            .collect(),
        Input::Bytes(b) => b.to_vec(),
    }
}

fn without_token_line(text: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(text.to_vec()).unwrap();
    text.split_inclusive('\n')
        .filter(|l| !l.starts_with("token"))
        .collect::<String>()
        .into_bytes()
}

/// Enrols `node`, revokes it at the hub and leaves the marker its agent
/// leaves when the hub refuses it (the detection is tested in enrol.rs).
fn revoke(hub: &Hub, node: &Node) {
    use vantage_node::revocation::{Evidence, Marker};
    use vantage_node::state::DataDir;

    node.write_config(&format!(
        "hub = \"{}\"\ntoken = \"{}\"\ncountry = \"DE\"\n",
        hub.url,
        hub.token(&["--country", "DE"])
    ));
    let out = node.run_once();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let data = DataDir::new(node.data());
    let state = data.read_node().unwrap().unwrap();
    hub.cli_ok(&["nodes", "revoke", &state.node_id]);
    Marker::new(
        &state.node_id,
        Evidence::TlsAlert,
        &state.endpoints.heartbeat,
        "received fatal alert: CertificateRevoked",
    )
    .write(&data)
    .unwrap();
}

#[test]
fn every_volunteer_mistake_is_explained() {
    let hub = hub();
    let mut failures = Vec::new();
    for case in CASES {
        let node = Node::new(&hub.ca_path());
        if let Before::Revoked = case.before {
            revoke(&hub, &node);
        }
        let input = bytes(&case.input, &hub.url, &hub.token(&["--country", "DE"]));
        let path = node.boot().join(case.file);
        std::fs::write(&path, &input).unwrap();

        let out = node.run_once();
        let status = node.status().replace("\r\n", "\n");
        let mut wrong = Vec::new();
        if out.status.code() != Some(case.exit) {
            wrong.push(format!(
                "exit {:?}, expected {}",
                out.status.code(),
                case.exit
            ));
        }
        for phrase in case.status {
            if !status.contains(phrase) {
                wrong.push(format!("status lacks {phrase:?}"));
            }
        }
        let expected = match case.after {
            After::Same => input.clone(),
            After::WithoutToken => without_token_line(&input),
        };
        if std::fs::read(&path).ok() != Some(expected) {
            wrong.push("the file afterwards is not as expected".into());
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "{}: {}\n--- status:\n{status}--- stderr:\n{}",
                case.name,
                wrong.join("; "),
                stderr(&out)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
