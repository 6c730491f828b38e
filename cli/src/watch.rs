//! `vantage watch`: follows a job's results live with a progress line.

use crate::error::{CliError, CliResult};
use crate::hub::{Hub, HubOpts};
use crate::results::{self, NodeInfo};
use crate::timespec;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::io::{IsTerminal as _, Read, Write};
use vantage_proto::api::{JobStatus, NodeEntry};
use vantage_proto::job::Job;
use vantage_proto::sse::{Decoder, Frame};

/// How often to reconnect after the hub closed the stream before giving up.
const MAX_RECONNECTS: u32 = 5;

/// What the watcher knows about the job.
#[derive(Debug, Clone)]
pub struct Target {
    /// The nodes the hub sent the job to.
    pub nodes: BTreeSet<String>,
    /// When the job expires (Unix seconds).
    pub expires: u64,
    /// Whether nodes repeat the job (then watching lasts until expiry).
    pub repeats: bool,
}

impl Target {
    /// From `GET /v1/jobs/<id>`. The job was signed and accepted, so it
    /// parses; if it does not (a newer hub?), the watch lasts until the
    /// nodes answered.
    pub fn from_status(status: &JobStatus) -> Self {
        let job = Job::from_value(&status.job.signed_job.job).ok();
        Self {
            nodes: status.job.nodes.iter().cloned().collect(),
            expires: job.as_ref().map_or(0, |j| j.expires),
            repeats: job.is_some_and(|j| j.repeat_secs.is_some()),
        }
    }
}

/// How results are shown as they arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// A table for people: redrawn whole on a terminal, a row a line otherwise.
    Table,
    /// One JSON line per result.
    Json,
    /// Only each node's headline time.
    Latency,
}

impl Output {
    /// From the `--json` and `--latency` flags.
    pub fn from_flags(json: bool, latency: bool) -> Self {
        match (json, latency) {
            (true, _) => Self::Json,
            (_, true) => Self::Latency,
            _ => Self::Table,
        }
    }
}

/// Tracks answers and prints rows and the progress line.
pub struct Progress<'a, O: Write, E: Write> {
    target: Target,
    answered: BTreeSet<String>,
    /// Results shown, and after how many to stop (`--stop-after`).
    received: usize,
    stop_after: Option<usize>,
    nodes: HashMap<String, NodeInfo>,
    output: Output,
    tty: bool,
    /// When stdout is a terminal: the rows so far, and how many lines the
    /// table drawn last took (to draw it again in their place).
    redraw: Option<(Vec<Vec<String>>, usize)>,
    out: &'a mut O,
    err: &'a mut E,
}

impl<'a, O: Write, E: Write> Progress<'a, O, E> {
    /// A tracker printing rows to `out` and progress to `err`.
    pub fn new(
        target: Target,
        nodes: HashMap<String, NodeInfo>,
        output: Output,
        out: &'a mut O,
        err: &'a mut E,
    ) -> Self {
        let redraw =
            (output != Output::Json && std::io::stdout().is_terminal()).then(|| (Vec::new(), 0));
        Self {
            target,
            answered: BTreeSet::new(),
            received: 0,
            stop_after: None,
            nodes,
            output,
            tty: std::io::stderr().is_terminal(),
            redraw,
            out,
            err,
        }
    }

    /// Stops watching after `n` results (`--stop-after N`).
    pub fn stop_after(mut self, n: Option<usize>) -> Self {
        self.stop_after = n;
        self
    }

    /// `n of m nodes answered`.
    pub fn line(&self) -> String {
        format!(
            "{} of {} nodes answered",
            self.answered.intersection(&self.target.nodes).count(),
            self.target.nodes.len()
        )
    }

    fn progress(&mut self) {
        let line = self.line();
        if self.tty {
            let _ = write!(self.err, "\r\x1b[K{line}");
        } else {
            let _ = writeln!(self.err, "{line}");
        }
        let _ = self.err.flush();
    }

    fn headers(&self) -> &'static [&'static str] {
        match self.output {
            Output::Latency => &results::LATENCY_HEADERS,
            _ => &results::HEADERS,
        }
    }

    /// Prints the header (table modes, a row a line) and the initial progress.
    pub fn start(&mut self) {
        if self.output != Output::Json && self.redraw.is_none() {
            let headers: Vec<String> = self.headers().iter().map(|h| h.to_string()).collect();
            let _ = writeln!(self.out, "{}", fixed(&headers));
        }
        self.progress();
    }

    /// Prints one row: on a terminal, the whole table again in its place.
    fn row(&mut self, cells: Vec<String>) {
        let headers = self.headers();
        match &mut self.redraw {
            Some((rows, lines)) => {
                rows.push(cells);
                let table = vantage_human::table::render(headers, rows);
                if *lines > 0 {
                    let _ = write!(self.out, "\x1b[{lines}A\x1b[J");
                }
                *lines = table.lines().count();
                let _ = write!(self.out, "{table}");
            }
            None => {
                let _ = writeln!(self.out, "{}", fixed(&cells));
            }
        }
    }

    /// One result arrived.
    pub fn result(&mut self, r: &Value) {
        if self.tty {
            let _ = write!(self.err, "\r\x1b[K");
        }
        match self.output {
            Output::Json => {
                let _ = writeln!(self.out, "{r}");
            }
            Output::Table => self.row(results::row(r, &self.nodes)),
            Output::Latency => self.row(results::latency_row(r, &self.nodes)),
        }
        let _ = self.out.flush();
        if let Some(n) = r.get("node_id").and_then(Value::as_str) {
            self.answered.insert(n.to_string());
        }
        self.received += 1;
        self.progress();
    }

    /// Whether watching is over at `now`, and why.
    pub fn done(&self, now: u64) -> Option<String> {
        if let Some(n) = self.stop_after.filter(|n| self.received >= *n) {
            return Some(format!("stopped after {n} result(s); {}", self.line()));
        }
        if now >= self.target.expires {
            return Some(format!("job expired; {}", self.line()));
        }
        let all = !self.target.nodes.is_empty() && self.target.nodes.is_subset(&self.answered);
        (all && !self.target.repeats).then(|| format!("done; {}", self.line()))
    }

    /// Ends the progress line.
    pub fn finish(&mut self, why: &str) {
        if self.tty {
            let _ = write!(self.err, "\r\x1b[K");
        }
        let _ = writeln!(self.err, "{why}");
    }
}

fn fixed(cells: &[String]) -> String {
    let widths = [14, 7, 9, 10, 9];
    let mut s = String::new();
    for (i, c) in cells.iter().enumerate() {
        let c: String = c
            .chars()
            .map(|x| if x.is_control() { '?' } else { x })
            .collect();
        match widths.get(i) {
            Some(w) => s += &format!("{c:<w$} ", w = *w),
            None => s += &c,
        }
    }
    s.trim_end().to_string()
}

/// Feeds stream bytes to the decoder and the tracker; true when watching is over.
pub fn feed<O: Write, E: Write>(
    decoder: &mut Decoder,
    bytes: &[u8],
    p: &mut Progress<'_, O, E>,
) -> bool {
    for frame in decoder.feed(bytes) {
        match frame {
            Ok(Frame::Event(ev)) if ev.event.is_none() => match serde_json::from_str(&ev.data) {
                Ok(r) => p.result(&r),
                Err(e) => {
                    let _ = writeln!(p.err, "\nskipping a result that is not JSON: {e}");
                }
            },
            Ok(_) => {}
            Err(e) => {
                let _ = writeln!(p.err, "\n{e}");
            }
        }
    }
    p.done(timespec::now()).is_some()
}

/// Follows the job until every targeted node answered, it expires,
/// `stop_after` results arrived, or Ctrl-C.
pub fn run(opts: &HubOpts, id: &str, output: Output, stop_after: Option<usize>) -> CliResult {
    let hub = Hub::connect(opts, false)?;
    let nodes = results::node_index(&hub.get::<Vec<NodeEntry>>("/v1/nodes")?);
    follow(&hub, opts, id, nodes, output, stop_after)
}

/// [`run`] with the hub and the node index already at hand.
pub fn follow(
    hub: &Hub,
    opts: &HubOpts,
    id: &str,
    nodes: HashMap<String, NodeInfo>,
    output: Output,
    stop_after: Option<usize>,
) -> CliResult {
    let path = format!("/v1/jobs/{id}");
    let target = Target::from_status(&hub.get(&path)?);
    let stream_hub = Hub::connect(opts, true)?;
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    let mut p = Progress::new(target, nodes, output, &mut out, &mut err).stop_after(stop_after);
    p.start();
    let mut decoder = Decoder::default();
    let mut reconnects = 0;
    loop {
        if let Some(why) = p.done(timespec::now()) {
            p.finish(&why);
            return Ok(());
        }
        let mut url = format!("{path}/results?follow=1");
        if let Some(last) = decoder.last_id() {
            url += &format!("&last_event_id={last}");
        }
        let mut body = stream_hub.stream(&url)?;
        let mut buf = [0u8; 16 * 1024];
        loop {
            match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if feed(&mut decoder, &buf[..n], &mut p) {
                        let why = p.done(timespec::now()).unwrap_or_default();
                        p.finish(&why);
                        return Ok(());
                    }
                }
                Err(e) => {
                    p.finish("");
                    return Err(CliError::Unreachable(format!(
                        "lost the results stream: {e}"
                    )));
                }
            }
        }
        reconnects += 1;
        if reconnects > MAX_RECONNECTS {
            p.finish("");
            return Err(CliError::Unreachable(
                "the hub keeps closing the results stream".into(),
            ));
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ends_when_every_targeted_node_answered() {
        let target = Target {
            nodes: ["n-a".to_string(), "n-b".to_string()].into(),
            expires: u64::MAX,
            repeats: false,
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut p = Progress::new(target, HashMap::new(), Output::Table, &mut out, &mut err);
        p.start();
        let mut d = Decoder::default();
        let ev = |id: u32, node: &str| {
            format!(
                "id: {id}\ndata: {}\n\n",
                json!({"node_id": node, "status": "ok", "probe": "tcp",
                       "data": {"peer": "127.0.0.1:22", "dns_ms": 0.0, "connect_ms": 4.0}})
            )
        };
        assert!(!feed(&mut d, b":ka\n\n", &mut p));
        assert!(!feed(&mut d, ev(1, "n-a").as_bytes(), &mut p));
        // A node the job was not sent to does not count.
        assert!(!feed(&mut d, ev(2, "n-x").as_bytes(), &mut p));
        assert_eq!(p.line(), "1 of 2 nodes answered");
        assert!(!feed(&mut d, b"id: 5\ndata: {not json\n\n", &mut p));
        let both = ev(6, "n-a") + &ev(7, "n-b");
        let (first, second) = both.as_bytes().split_at(17);
        assert!(!feed(&mut d, first, &mut p));
        assert!(feed(&mut d, second, &mut p));
        assert_eq!(p.line(), "2 of 2 nodes answered");
        assert_eq!(d.last_id(), Some("7"));
        let err = String::from_utf8(err).unwrap();
        assert!(err.contains("1 of 2 nodes answered"), "{err}");
        assert!(err.contains("not JSON"), "{err}");
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("connect 4.0 ms"), "{out}");
    }

    #[test]
    fn repeated_jobs_run_until_expiry() {
        let target = Target {
            nodes: ["n-a".to_string()].into(),
            expires: 100,
            repeats: true,
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut p = Progress::new(target, HashMap::new(), Output::Json, &mut out, &mut err);
        p.result(&json!({"node_id": "n-a"}));
        assert_eq!(p.done(99), None);
        assert!(p.done(100).unwrap().starts_with("job expired"));
    }

    #[test]
    fn stops_after_n_results_even_of_a_repeated_job() {
        let target = Target {
            nodes: ["n-a".to_string(), "n-b".to_string()].into(),
            expires: 100,
            repeats: true,
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut p = Progress::new(target, HashMap::new(), Output::Json, &mut out, &mut err)
            .stop_after(Some(2));
        p.result(&json!({"node_id": "n-a"}));
        assert_eq!(p.done(0), None);
        p.result(&json!({"node_id": "n-a", "seq": 1}));
        assert_eq!(
            p.done(0).unwrap(),
            "stopped after 2 result(s); 1 of 2 nodes answered"
        );
    }
}
