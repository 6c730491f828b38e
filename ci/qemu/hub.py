"""The real hub (vantage-hub) on host loopback, and an operator client for
its HTTP API (mTLS with an operator certificate the hub issued)."""

import http.client
import json
import os
import signal
import ssl
import subprocess
import time
from pathlib import Path


class HubError(Exception):
    """The hub did not start or answered with an error."""


class Hub:
    """One hub data directory; serve() can be stopped and started again."""

    def __init__(self, binary, datadir, log, names, policy, public_url=None):
        self.binary = str(binary)
        self.datadir = Path(datadir)
        self.log = Path(log)
        self.policy = Path(policy)
        self.public_url = public_url
        self.proc = None
        self.addr = None
        self._cli("init", "--network", "vq-test", *sum((["--name", n] for n in names), []))
        opdir = self.datadir.parent / (self.datadir.name + "-operator")
        out = json.loads(self._cli("operator", "issue", "qemu-test", "--out", str(opdir), "--json"))
        self.ca = out["ca"]
        self.ctx = ssl.create_default_context(cafile=self.ca)
        self.ctx.load_cert_chain(out["cert"], out["key"])

    def _cli(self, *args):
        r = subprocess.run([self.binary, "--data-dir", str(self.datadir), *args],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise HubError(f"vantage-hub {' '.join(args)} failed ({r.returncode}):\n"
                           f"{r.stdout}{r.stderr}")
        return r.stdout

    def start(self, port=0):
        """Serves on 127.0.0.1:port (0: any free port, kept across restarts)."""
        addr_file = self.datadir.parent / (self.datadir.name + ".addr")
        addr_file.unlink(missing_ok=True)
        if self.addr:
            port = self.addr[1]
        cmd = [self.binary, "--data-dir", str(self.datadir), "serve",
               "--listen", f"127.0.0.1:{port}", "--addr-file", str(addr_file),
               "--policy", str(self.policy), "--unsafe-raw-publish",
               "--online-window", "2m", "--keepalive", "5s"]
        if self.public_url:
            cmd += ["--public-url", self.public_url]
        with open(self.log, "ab") as out:
            out.write(f"\n===== vq: hub start {time.strftime('%H:%M:%S')} =====\n".encode())
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         env=dict(os.environ, RUST_LOG="info", NO_COLOR="1"))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if addr_file.exists() and addr_file.read_text().strip():
                host, p = addr_file.read_text().strip().rsplit(":", 1)
                self.addr = (host, int(p))
                return self.addr
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise HubError(f"hub did not start; its log:\n{self.log.read_text()[-3000:]}")

    def stop(self):
        """Stops the hub (SIGTERM, then SIGKILL)."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def api(self, method, path, body=None, expect=(200, 201), raw=None):
        """One request as operator (a JSON body, or raw bytes); returns the
        decoded JSON answer."""
        conn = http.client.HTTPSConnection(self.addr[0], self.addr[1], context=self.ctx,
                                           timeout=60)
        try:
            data, kind = ((raw, "application/octet-stream") if raw is not None else
                          (json.dumps(body).encode() if body is not None else None,
                           "application/json"))
            conn.request(method, path, body=data, headers={"Content-Type": kind} if data else {})
            resp = conn.getresponse()
            text = resp.read().decode(errors="replace")
        finally:
            conn.close()
        if resp.status not in expect:
            raise HubError(f"{method} {path}: HTTP {resp.status}: {text[:500]}")
        return json.loads(text) if text.strip() else None

    def token(self, country):
        """A fresh one-time enrolment token."""
        return json.loads(self._cli("token", "create", "--country", country, "--json"))["token"]

    def nodes(self):
        """The node registry."""
        return self.api("GET", "/v1/nodes")

    def results(self, job_id):
        """Results of a job so far."""
        return self.api("GET", f"/v1/jobs/{job_id}/results")

    def submit(self, signed_job):
        """POST /v1/jobs; returns the hub's answer."""
        return self.api("POST", "/v1/jobs", signed_job)

    def publish_raw(self, channel, payload):
        """TEST ONLY endpoint: publishes an unchecked payload on a channel."""
        return self.api("POST", f"/v1/publish/{channel}", payload)

    def release(self, signed, expect=(200, 201)):
        """POST /v1/releases."""
        return self.api("POST", "/v1/releases", signed, expect=expect)

    def upload(self, version, target, binary):
        """PUT the vantage-agent of a release for target."""
        return self.api("PUT", f"/v1/releases/{version}/{target}/vantage-agent", raw=binary)

    def node(self, node_id):
        """One node's registry entry."""
        return self.api("GET", f"/v1/nodes/{node_id}")

    def revoke(self, node_id):
        """Revokes a node through the hub's command line."""
        return self._cli("nodes", "revoke", node_id)
