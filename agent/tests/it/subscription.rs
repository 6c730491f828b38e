//! Subscription modes: long-poll against the hub, and unchanged operation
//! against nginx + Nchan serving the same channels (only the subscriber URL
//! differs), with results still going to the hub.

use crate::support::hub;
use std::process::{Child, Command, Stdio};
use vantage_testkit::{Agent, Hub, free_port, jobs::node_job, wait_for};

use serde_json::json;

#[test]
fn long_poll_mode_receives_jobs() {
    let hub = hub();
    let op = hub.operator("ops");
    let mut agent = Agent::new(
        &hub,
        "",
        "mode = \"long-poll\"\npoll_timeout_secs = 2\n[owner]\nallow_special_addresses = true\n",
    );
    agent.start();
    agent.subscribed(1);
    let node = agent.node_id.clone();
    for id in ["poll-1", "poll-2"] {
        hub.submit(
            &op,
            &node_job(
                id,
                &node,
                json!({"cmd": "tcp", "args": {"host": "127.0.0.1", "port": hub.port()}}),
            ),
        );
        let r = hub.result(&op, id, 30);
        assert_eq!(r["status"], "ok", "{r}");
    }
    // Polls end after at most 2 s without events; none of them failed.
    std::thread::sleep(std::time::Duration::from_secs(5));
    assert!(
        !agent.log().contains("subscription:"),
        "no poll failed: {}",
        agent.log()
    );
}

struct Nginx {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: the master then stops its workers too.
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

/// nginx + Nchan: HTTP publisher on `pub_port`, mTLS event-stream subscriber on
/// `sub_port` with the hub's server certificate, trusting the hub's network CA.
fn nchan(hub: &Hub, pub_port: u16, sub_port: u16) -> Nginx {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let data = hub.data();
    let data = data.display();
    let module = [
        "/usr/lib/nginx/modules/ngx_nchan_module.so",
        "/usr/lib64/nginx/modules/ngx_nchan_module.so",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .expect("the Nchan module is missing: bash scripts/deps.sh fixtures");
    let conf = format!(
        r#"load_module {module};
daemon off;
user root;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  server {{
    listen 127.0.0.1:{pub_port};
    location ~ ^/pub/(.+)$ {{
      nchan_publisher;
      nchan_channel_id $1;
      nchan_message_buffer_length 100;
      nchan_message_timeout 1h;
    }}
  }}
  server {{
    listen 127.0.0.1:{sub_port} ssl;
    ssl_certificate {data}/server.pem;
    ssl_certificate_key {data}/server.key;
    ssl_client_certificate {data}/ca.pem;
    ssl_verify_client on;
    location ~ ^/sub/(.+)$ {{
      nchan_subscriber eventsource;
      nchan_channel_id $1;
      nchan_channel_id_split_delimiter ",";
      nchan_eventsource_ping_interval 1;
    }}
  }}
}}
"#
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("nginx is missing: bash scripts/deps.sh fixtures");
    let child = Command::new(nginx)
        .arg("-c")
        .arg(dir.path().join("nginx.conf"))
        .arg("-p")
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("nginx to listen", 10, || {
        std::net::TcpStream::connect(("127.0.0.1", pub_port)).is_ok()
    });
    Nginx { child, _dir: dir }
}

#[test]
fn works_unchanged_against_nginx_nchan() {
    let hub = hub();
    let op = hub.operator("ops");
    let (pub_port, sub_port) = (free_port(), free_port());
    let _nginx = nchan(&hub, pub_port, sub_port);
    let mut agent = Agent::new(
        &hub,
        "",
        &format!(
            "url = \"https://localhost:{sub_port}/sub/{{channels}}\"\n[owner]\nallow_special_addresses = true\n"
        ),
    );
    agent.start();
    agent.subscribed(1);
    assert!(
        agent.log().contains(&format!(":{sub_port}/sub/all,")),
        "{}",
        agent.log()
    );
    let node = agent.node_id.clone();
    let publish = |seq: u64, id: &str| {
        let job = node_job(
            id,
            &node,
            json!({"cmd": "tcp", "args": {"host": "127.0.0.1", "port": hub.port()}}),
        );
        // Accepted by the hub first: it stores results only for jobs it accepted
        // (a job published around it could be made up by anyone who can publish).
        hub.submit(&op, &job);
        let envelope = json!({"id": seq, "channel": format!("node.{node}"),
            "time": httpdate::fmt_http_date(std::time::SystemTime::now()), "payload": hub.sign(&job, &[0, 1])});
        let status = ureq::post(format!("http://127.0.0.1:{pub_port}/pub/node.{node}"))
            .header("Content-Type", "application/json")
            .send(envelope.to_string())
            .unwrap()
            .status();
        assert!(status.is_success(), "publish: {status}");
    };
    publish(1, "nchan-1");
    let r = hub.result(&op, "nchan-1", 30);
    assert_eq!(r["status"], "ok", "{r}");
    // Nchan's own event ids are persisted and sent back as Last-Event-ID.
    let last = std::fs::read_to_string(agent.data().join("last-event-id")).unwrap();
    assert!(!last.trim().is_empty());
    agent.kill9();
    publish(2, "nchan-2");
    agent.start();
    let r = hub.result(&op, "nchan-2", 30);
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(op.results("nchan-1").len(), 1);
    assert_eq!(
        agent.log().matches("accepted job").count(),
        2,
        "{}",
        agent.log()
    );
}
