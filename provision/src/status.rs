//! What the volunteer sees: a short text file on the boot partition
//! (`vantage-status.txt`, readable when the card is back in a PC), and the
//! same words on the journal and console.

use std::cell::RefCell;
use std::io;
use std::path::{Path, PathBuf};

use crate::clock;
use vantage_node::durable::atomic_write;

/// Name of the status file on the boot partition.
pub const FILE_NAME: &str = "vantage-status.txt";

/// The state of the node as told to the volunteer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// The node has its identity and works.
    Enrolled {
        /// Its id.
        node_id: String,
        /// Its hub.
        hub: String,
        /// Its country.
        country: String,
        /// The channels it listens on.
        channels: Vec<String>,
        /// Something the volunteer may want to fix although the node works.
        note: Option<String>,
    },
    /// Waiting for the hub's administrator to approve the node.
    Pending {
        /// Fingerprint of the node's key.
        fingerprint: String,
        /// The hub.
        hub: String,
        /// Why there is no token, or what happened to it.
        why: String,
        /// The hub's note for its administrator, if any.
        hub_says: Option<String>,
    },
    /// Not enrolled yet, still trying on its own.
    Waiting {
        /// What it is waiting for.
        what: String,
        /// What the volunteer can check if this lasts.
        todo: String,
    },
    /// The network's operator revoked the node's certificate; the agent
    /// saw the hub refuse it and stopped.
    Revoked {
        /// The node's id (empty when the agent's marker is damaged).
        node_id: String,
        /// The hub.
        hub: String,
        /// When and how the agent saw it, in words.
        seen: String,
        /// A token is in vantage.toml but no reset file next to it.
        token_without_reset: bool,
    },
    /// Stuck until the volunteer changes something.
    Problem {
        /// What went wrong.
        what: String,
        /// What to do.
        todo: String,
    },
}

impl Status {
    /// The one-word headline.
    pub fn headline(&self) -> &'static str {
        match self {
            Status::Enrolled { .. } => "ENROLLED",
            Status::Pending { .. } => "WAITING FOR APPROVAL",
            Status::Waiting { .. } => "WORKING ON IT",
            Status::Revoked { .. } => "REVOKED",
            Status::Problem { .. } => "PROBLEM",
        }
    }

    /// The status file's text. `now` is omitted for an enrolled or revoked
    /// node so that an unchanged node does not rewrite its card on every
    /// boot (a revoked node says when it was revoked instead).
    pub fn render(&self, now: i64) -> String {
        let body = match self {
            // Final states: no "As of", nothing changes by itself any more.
            Status::Enrolled {
                node_id,
                hub,
                country,
                channels,
                note,
            } => {
                let s = enrolled_text(node_id, hub, country, channels, note.as_deref());
                return format!("vantage node: {}\n\n{s}", self.headline());
            }
            Status::Revoked {
                node_id,
                hub,
                seen,
                token_without_reset,
            } => {
                let s = revoked_text(node_id, hub, seen, *token_without_reset);
                return format!("vantage node: {}\n\n{s}", self.headline());
            }
            Status::Pending {
                fingerprint,
                hub,
                why,
                hub_says,
            } => pending_text(fingerprint, hub, why, hub_says.as_deref()),
            Status::Waiting { what, todo } => {
                format!("{what}\n\nThe node keeps trying by itself. If this lasts: {todo}\n")
            }
            Status::Problem { what, todo } => {
                format!("What went wrong:\n{what}\n\nWhat to do:\n{todo}\n")
            }
        };
        let when = if now < clock::build_time() {
            "(the node's clock is not set yet)".to_owned()
        } else {
            vantage_human::utc(now)
        };
        format!("vantage node: {}\nAs of: {when}\n\n{body}", self.headline())
    }
}

/// Writes statuses to the boot partition and to standard error (which
/// systemd sends to the journal and, if the unit says so, the console).
#[derive(Debug, Clone)]
pub struct Reporter {
    path: PathBuf,
    last: RefCell<Option<Status>>,
    notes: RefCell<Vec<String>>,
}

impl Reporter {
    /// A reporter writing `vantage-status.txt` in `boot_dir`.
    pub fn new(boot_dir: &Path) -> Self {
        Reporter {
            path: boot_dir.join(FILE_NAME),
            last: RefCell::new(None),
            notes: RefCell::new(Vec::new()),
        }
    }

    /// Adds a remark shown under every status from now on (how the settings
    /// file was found, say), whatever the outcome of the run.
    pub fn note(&self, note: String) {
        self.notes.borrow_mut().push(note);
    }

    /// The status file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Tells the volunteer. The file is only rewritten when its text
    /// changes, and a status is logged only when it differs from the last.
    pub fn report(&self, status: &Status) -> io::Result<()> {
        let mut text = status.render(clock::now());
        for n in self.notes.borrow().iter() {
            text.push_str(&format!("\nPlease note: {n}\n"));
        }
        // The journal gets each status once, not once per retry.
        if self.last.replace(Some(status.clone())).as_ref() != Some(status) {
            for line in text.lines().filter(|l| !l.is_empty()) {
                eprintln!("vantage-provision: {line}");
            }
        }
        let file_text = text.replace('\n', "\r\n");
        if std::fs::read_to_string(&self.path).is_ok_and(|old| old == file_text) {
            return Ok(());
        }
        atomic_write(&self.path, file_text.as_bytes(), 0o644)
    }
}

fn enrolled_text(
    node_id: &str,
    hub: &str,
    country: &str,
    channels: &[String],
    note: Option<&str>,
) -> String {
    let mut s = format!(
        "This node is enrolled as {node_id}.\n\
         Hub: {hub}\nCountry: {country}\nListening on: {}\n\n\
         Nothing to do: the node works on its own from now on.\n",
        channels.join(", ")
    );
    if let Some(n) = note {
        s.push_str(&format!("\nPlease note: {n}\n"));
    }
    s
}

fn pending_text(fingerprint: &str, hub: &str, why: &str, hub_says: Option<&str>) -> String {
    let note = hub_says
        .map(|m| format!("The hub says: {m}\n\n"))
        .unwrap_or_default();
    format!(
        "{why}\n\n\
         Send this fingerprint to the administrator of {hub} and ask them to approve it:\n\n\
         {fingerprint}\n\n\
         {note}\
         The node keeps asking and starts working by itself once approved.\n\
         (Or put a token = \"...\" line in vantage.toml and restart the node.)\n"
    )
}

fn revoked_text(node_id: &str, hub: &str, seen: &str, token_without_reset: bool) -> String {
    let node = if node_id.is_empty() {
        "This node".to_owned()
    } else {
        format!("This node ({node_id})")
    };
    let reminder = if token_without_reset {
        "\nThere is a token in vantage.toml, but no file named vantage-reset: the \
         node enrols again only with both.\n"
    } else {
        ""
    };
    format!(
        "{node} has been removed from its network: the operator of {hub} revoked \
         its certificate, and the hub no longer accepts it.\n\
         {seen}\n\n\
         The node has stopped working and stays stopped, also after a restart.\n\n\
         What to do:\n\
         - If you did not expect this, ask the operator of your network (the \
         administrator of {hub}) why; tell them this node's id.\n\
         - To enrol the node again, once they agree: put the new token they give you \
         in vantage.toml (token = \"...\"), put an empty file named vantage-reset \
         next to it on the boot partition, and start the node. It then enrols as a \
         new node, with a new id.\n\
         - Otherwise there is nothing to do; the card can be flashed with \
         something else.\n{reminder}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enrolled_status_is_stable_and_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let r = Reporter::new(dir.path());
        let s = Status::Enrolled {
            node_id: "n-0011223344".into(),
            hub: "https://h:8443".into(),
            country: "DE".into(),
            channels: vec!["all".into(), "cc.DE".into()],
            note: None,
        };
        assert_eq!(s.render(0), s.render(2_000_000_000));
        r.report(&s).unwrap();
        let text = std::fs::read_to_string(r.path()).unwrap();
        assert!(text.starts_with("vantage node: ENROLLED\r\n"), "{text}");
        assert!(text.contains("enrolled as n-0011223344"));
        let mtime = std::fs::metadata(r.path()).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        r.report(&s).unwrap();
        assert_eq!(
            std::fs::metadata(r.path()).unwrap().modified().unwrap(),
            mtime
        );
        r.note("read from vantage.toml.txt".into());
        r.report(&s).unwrap();
        let text = std::fs::read_to_string(r.path()).unwrap();
        assert!(
            text.ends_with("\r\nPlease note: read from vantage.toml.txt\r\n"),
            "{text}"
        );
    }

    #[test]
    fn pending_shows_the_fingerprint_on_its_own_line() {
        let s = Status::Pending {
            fingerprint: "abcdef0123".into(),
            hub: "https://h".into(),
            why: "No token in vantage.toml.".into(),
            hub_says: Some("approve it".into()),
        };
        let t = s.render(clock::build_time());
        assert!(
            t.contains("\n\nabcdef0123\n\nThe hub says: approve it\n"),
            "{t}"
        );
        assert!(t.contains("WAITING FOR APPROVAL"));
        assert!(s.render(0).contains("clock is not set"));
    }

    #[test]
    fn revoked_says_what_happened_and_how_to_enrol_again() {
        let s = Status::Revoked {
            node_id: "n-0011223344".into(),
            hub: "https://h:8443".into(),
            seen: "Seen on 2026-01-01T10:00:00Z: the hub refused it.".into(),
            token_without_reset: false,
        };
        let t = s.render(clock::build_time());
        assert_eq!(t, s.render(2_000_000_000), "no rewrite on every boot");
        assert!(
            t.starts_with("vantage node: REVOKED\n\nThis node (n-0011223344)"),
            "{t}"
        );
        assert!(t.contains("revoked its certificate"), "{t}");
        assert!(t.contains("Seen on 2026-01-01T10:00:00Z"), "{t}");
        assert!(t.contains("ask the operator of your network"), "{t}");
        assert!(t.contains("vantage-reset") && t.contains("token"), "{t}");
        assert!(!t.contains("no file named vantage-reset"), "{t}");
        let t = Status::Revoked {
            node_id: "n-0011223344".into(),
            hub: "https://h:8443".into(),
            seen: String::new(),
            token_without_reset: true,
        }
        .render(0);
        assert!(t.contains("no file named vantage-reset"), "{t}");
    }

    #[test]
    fn problem_says_what_and_what_to_do() {
        let t = Status::Problem {
            what: "country is missing".into(),
            todo: "add it".into(),
        }
        .render(clock::build_time());
        assert!(
            t.contains("What went wrong:\ncountry is missing\n\nWhat to do:\nadd it\n"),
            "{t}"
        );
    }
}
