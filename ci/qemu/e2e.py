#!/usr/bin/env python3
"""make qemu-test: the life of a freshly flashed node, end to end.

An emulated aarch64 machine carrying image/overlay and the static binaries of
make agent boots against the real hub on host loopback and the loopback
fixtures (ci/fixtures), inside QEMU's restricted user-mode network. Then the
ARMv6 binaries run the enrol -> job -> results chain under qemu-arm-static
-cpu arm1176. Each step is checked on the hub's API and on the guest (serial
console, check channel), timed, and a failure prints the step, the reason, the
serial console's tail and the hub log's tail.

Usage: python3 ci/qemu/e2e.py [--part all|qemu|armv6] [--cache DIR] [--work DIR]
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import guest as guestmod  # noqa: E402
import hub as hubmod  # noqa: E402
import jobs  # noqa: E402
import testsys  # noqa: E402

REPO = HERE.parent.parent
AARCH64 = "aarch64-unknown-linux-musl"
ARMV6 = "arm-unknown-linux-musleabihf"
COUNTRY = "DE"
# The guest's view: the hub and the fixtures at fixed addresses of QEMU's user
# network, each forwarded (guestfwd) to a port on host loopback.
HUB_IP, DNS_IP, WWW_IP, GATEWAY = "10.0.2.100", "10.0.2.101", "10.0.2.102", "10.0.2.2"
HUB_NAME = "hub.vq.test"
HUB_URL = f"https://{HUB_NAME}:8443"
FIXTURE_BODY = b"hello from the vantage fixture\n"
# The version of make agent's build (the image's own agent): the crate's.
IMAGE_VERSION = next(line.split('"')[1] for line in (REPO / "Cargo.toml").read_text().splitlines()
                     if line.startswith("version ="))


class StepFailed(Exception):
    """A check of a step did not hold."""


def expect(cond, what):
    """Fails the step with what when cond is false."""
    if not cond:
        raise StepFailed(what)


def wait_for(fn, timeout, what, interval=1.0):
    """Polls fn until it returns something truthy; returns that."""
    deadline = time.monotonic() + timeout
    last_err = None
    while time.monotonic() < deadline:
        try:
            v = fn()
            if v:
                return v
        except (hubmod.HubError, OSError) as e:
            last_err = e
        time.sleep(interval)
    raise StepFailed(f"{what}: not within {timeout} s" + (f" (last error: {last_err})"
                                                          if last_err else ""))


class Run:
    """Steps with timing; the record goes to the work dir as timings.json."""

    def __init__(self, work):
        self.work = work
        self.timings = []
        self.logs = {}
        self.guest = None
        self.hubs = []
        self.t0 = time.monotonic()

    def step(self, name, fn):
        print(f"\n--- {name}", flush=True)
        t = time.monotonic()
        try:
            extra = fn() or {}
        except Exception as e:  # every failure ends the run with its context
            dt = time.monotonic() - t
            self.fail(name, e, dt)
            raise SystemExit(1) from None
        dt = time.monotonic() - t
        self.timings.append({"step": name, "secs": round(dt, 1), **extra})
        detail = "".join(f", {k} {v}" for k, v in extra.items())
        print(f"ok   {name} ({dt:.1f} s{detail})", flush=True)

    def fail(self, name, err, dt):
        print(f"\nFAIL {name} after {dt:.1f} s: {err}", flush=True)
        if not isinstance(err, (StepFailed, guestmod.GuestError, hubmod.HubError,
                                testsys.BuildError)):
            traceback.print_exc()
        for label, path in self.logs.items():
            p = Path(path)
            if p.exists():
                lines = p.read_text(errors="replace").splitlines()
                n = 150 if label == "serial console" else 40
                print(f"\n===== last {min(n, len(lines))} lines of the {label} ({p}) =====")
                print("\n".join(lines[-n:]))
        if self.guest and self.guest.proc.poll() is None:
            for req in ("failed", "units"):
                try:
                    print(f"\n===== guest: {req} =====\n{self.guest.check(req, timeout=15)[1]}")
                except guestmod.GuestError as e:
                    print(f"\n===== guest: {req}: {e}")
        print(f"\nqemu-test: FAILED at step '{name}'; everything is in {self.work}")

    def summary(self):
        total = time.monotonic() - self.t0
        print("\nqemu-test timings:")
        for t in self.timings:
            extra = "".join(f"  {k}={v}" for k, v in t.items() if k not in ("step", "secs"))
            print(f"  {t['secs']:7.1f} s  {t['step']}{extra}")
        print(f"  {total:7.1f} s  total")
        (self.work / "timings.json").write_text(json.dumps(
            {"steps": self.timings, "total_secs": round(total, 1)}, indent=1))


def sh(cmd, **kw):
    """Runs a command, raising StepFailed with its output on failure."""
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise StepFailed(f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n"
                         f"{r.stdout[-2000:]}{r.stderr[-2000:]}")
    return r.stdout


def start_fixtures(work):
    """ci/fixtures on loopback, on free ports; returns their settings."""
    d = work / "fixtures"
    env = dict(os.environ, FIXTURE_ADDR="127.0.0.1",
               DNS_PORT=str(guestmod.free_port()), HTTP_PORT=str(guestmod.free_port()),
               HTTPS_PORT=str(guestmod.free_port()))
    sh(["bash", str(REPO / "ci/fixtures/start.sh"), str(d)], env=env)
    fx = {}
    for line in (d / "fixtures.env").read_text().splitlines():
        k, _, v = line.partition("=")
        fx[k] = v
    fx["ports"] = {k: int(env[k]) for k in ("DNS_PORT", "HTTP_PORT", "HTTPS_PORT")}
    return fx


def stop_fixtures(work):
    subprocess.run(["bash", str(REPO / "ci/fixtures/stop.sh"), str(work / "fixtures")],
                   capture_output=True)


def job(job_id, probe, node_id, not_before=None, validity=1800):
    """A one-shot job for one node."""
    now = int(time.time())
    return {"v": 1, "id": job_id, "probe": probe, "select": {"node": node_id},
            "limit": None, "not_before": not_before or now - 60,
            "expires": (not_before or now) + validity, "spread_secs": 0,
            "repeat_secs": None, "proposer": "alice"}


def one_result(hub, job_id, timeout, what):
    """Waits for the job's result and returns it (exactly one)."""
    res = wait_for(lambda: hub.results(job_id), timeout, f"result of {what} ({job_id})")
    expect(len(res) == 1, f"{job_id}: {len(res)} results at the hub, expected exactly 1: {res}")
    return res[0]


def release_binary(args, version, target):
    """The agent build of version for target (make agent-releases)."""
    p = Path(args.release_dir) / version / target / "vantage-agent"
    expect(p.is_file(), f"{p} missing: run make agent-releases")
    return p.read_bytes()


def agent_config(trust_anchor_path):
    """The test node's agent.toml: the image's defaults, plus the fixtures'
    DNSSEC trust anchors and permission to probe the addresses of QEMU's user
    network (private range 10.0.2.0/24, refused by default)."""
    return (f'trust_anchor = "{trust_anchor_path}"\n'
            "heartbeat = \"10s\"\n"
            "[owner]\nallow_special_addresses = true\n").encode()


def assemble_image(args, work, hub, p, volunteer, extra, log):
    """The real image: make image BOARD=qemu_aarch64 for this run's network
    (hub URL, CA, policy: what make image takes), then on a copy of its
    sdcard.img the volunteer's vantage.toml (mtools, as a volunteer's computer
    writes it) and the test-only additions (check channel, test settings)."""
    env = dict(os.environ, BOARD="qemu_aarch64", SOURCES="registries", HUB_URL=HUB_URL,
               NETWORK_CA=str(hub.ca), POLICY=str(work / "policy.json"),
               KERNEL=str(p["kernel"] / "vmlinuz"))
    t = time.monotonic()
    testsys.run(["bash", str(REPO / "image/build-image.sh")], work / "image-build.log", env=env)
    built = REPO / "out/image/qemu_aarch64/sdcard.img"
    disk = work / "disk.img"
    shutil.copy(built, disk)
    files = dict(extra)
    for f in (HERE / "rootfs").rglob("*"):
        if f.is_file():
            files["/" + str(f.relative_to(HERE / "rootfs"))] = (f.read_bytes(), f.stat().st_mode & 0o777)
    links = {f"/etc/systemd/system/{'sockets' if u.endswith('.socket') else 'multi-user'}"
             f".target.wants/{u}": f"/etc/systemd/system/{u}" for u in testsys.test_units()}
    # No NTP server answers inside QEMU's restricted network, and QEMU's clock is
    # the host's: the test system does not wait for network time (a Pi must).
    links["/etc/systemd/system/systemd-time-wait-sync.service"] = "/dev/null"
    testsys.customise_root(disk, files, links, log)
    testsys.fat_write(disk, "vantage.toml", volunteer, log)
    # Free space behind the data partition, as on a card larger than the image.
    with open(disk, "r+b") as f:
        f.truncate(disk.stat().st_size + testsys.FREE_MB * testsys.MiB)
    return {"image_build_s": round(time.monotonic() - t, 1),
            "image_sha256": (built.parent / "sdcard.img.sha256").read_text().split()[0][:16]}


def assemble_debian(args, work, p, volunteer, extra, log):
    """The Debian stand-in (--system debian): a quick path for overlay edits,
    the overlay and binaries laid onto a Debian root file system."""
    overlays = [Path(args.overlay),
                REPO / "image/buildroot/board/vantage/rootfs-overlay/etc/systemd/network",
                HERE / "rootfs"]
    expect(overlays[0].is_dir(), f"{args.overlay} missing")
    # The board's network file lives below etc/systemd/network of its overlay.
    net = work / "netoverlay/etc/systemd/network"
    net.mkdir(parents=True, exist_ok=True)
    for f in overlays[1].glob("*.network"):
        shutil.copy(f, net)
    overlays[1] = work / "netoverlay"
    testsys.make_fat(work / "boot.img", {"vantage.toml": volunteer}, log)
    testsys.make_root(work / "root.img", p["base"], p["kernel"], overlays, extra, log)
    testsys.make_data(work / "data.img", log)
    testsys.make_disk(work / "disk.img", work / "boot.img", work / "root.img",
                      work / "data.img", log)
    for f in ("boot.img", "root.img", "data.img"):
        (work / f).unlink()
    return {}


class QemuPart:
    """The aarch64 guest: steps 1-10, one method each. What a step learns (the
    hub, its token, the approvers, the node, its boot id) is an attribute the
    later steps read."""

    def __init__(self, run, args, cache, work, fx):
        self.run, self.args, self.cache, self.work, self.fx = run, args, cache, work, fx
        self.log = work / "build.log"
        run.logs["build log"] = self.log
        self.pieces = self.approvers = self.hub = self.token = None
        self.node = self.boot_id = None

    def steps(self):
        run, args = self.run, self.args
        run.step(f"assemble the test system ({args.system}: kernel, initramfs, disk, hub, "
                 "fixtures)", self.assemble)
        run.step("1 first boot: enrol with the token, online with country, token gone, status",
                 self.first_boot)
        run.step("2 approved jobs: dns secure+bogus, http, tls, tcp, ping, traceroute",
                 self.approved_jobs)
        run.step("3 forged and under-quorum jobs via raw publish: refused, counted at the hub, "
                 "nothing run", self.refused)
        run.step("4 no failed units, no ordering cycles, agent logs in the journal, "
                 "the image's OS with a read-only root", self.health)
        run.step("5 reboot: no second enrolment, job published while down is caught up",
                 self.reboot)
        run.step("6 power cut with a result in the outbox: delivered after boot, exactly once",
                 self.power_cut)
        run.step("7 update with a power cut in the middle: boots on a good version, then runs "
                 "release 0.2.0 (another build) from a sealed copy and reports it", self.update)
        run.step("8 a release whose binary fails at start (0.2.1): rolled back to 0.2.0, "
                 "reported", self.failing_release)
        run.step("9 an under-quorum release refused by the hub, a tampered binary refused by "
                 "the node: nothing stored or run", self.refused_release)
        run.step("10 revocation at the hub: the agent stops for good, its log and the status "
                 "file say why; the card afterwards", self.revoke)
        self.hub.stop()

    def assemble(self):
        run, args, cache, work, fx, log = (self.run, self.args, self.cache, self.work, self.fx,
                                           self.log)
        p = testsys.pieces(cache, log, with_base=args.system == "debian")
        self.pieces = p
        bins = Path(args.bin_dir) / AARCH64
        for b in ("vantage-agent", "vantage-provision"):
            expect((bins / b).is_file(), f"{bins / b} missing: run make agent")
        approvers = [jobs.Approver(n, hashlib.sha256(f"vq-{n}".encode()).digest(), work)
                     for n in ("alice", "bob", "carol")]
        self.approvers = approvers
        policy = jobs.make_policy(approvers, threshold=2)
        (work / "policy.json").write_text(json.dumps(policy, indent=1))
        hub = hubmod.Hub(args.hub_bin, work / "hub", work / "hub.log",
                         [HUB_NAME, HUB_IP, "127.0.0.1"], work / "policy.json", public_url=HUB_URL)
        run.hubs.append(hub)
        run.logs["hub log"] = work / "hub.log"
        hub.start()
        self.hub = hub
        token = hub.token(COUNTRY)
        self.token = token
        volunteer = (f'hub = "{HUB_URL}"\ntoken = "{token}"\ncountry = "{COUNTRY}"\n'
                     'tags = ["qemu"]\n').encode()
        ta = Path(fx["FIXTURE_TRUST_ANCHOR"]).read_bytes()
        # This run's test settings: the agent's DNSSEC anchor for the fixture
        # zones, and the hub's name (QEMU's user network has no DNS server).
        extra = {
            "/etc/vantage/agent.toml": (agent_config("/etc/vantage/trust-anchors.key"), 0o644),
            "/etc/vantage/trust-anchors.key": (ta, 0o644),
            "/etc/hosts": (f"127.0.0.1 localhost\n{HUB_IP} {HUB_NAME}\n".encode(), 0o644),
        }
        if args.system == "image":
            info = assemble_image(args, work, hub, p, volunteer, extra, log)
        else:
            extra.update({
                "/etc/vantage/ca.pem": (Path(hub.ca).read_bytes(), 0o644),
                "/etc/vantage/policy.json": ((work / "policy.json").read_bytes(), 0o644),
                "/usr/bin/vantage-agent": ((bins / "vantage-agent").read_bytes(), 0o755),
                "/usr/bin/vantage-provision": ((bins / "vantage-provision").read_bytes(), 0o755),
            })
            info = assemble_debian(args, work, p, volunteer, extra, log)
        cached = ",".join(k for k, v in p["cached"].items() if v) or "none"
        return {"system": args.system, "cached": cached, **info}

    def boot(self):
        run, args, work, hub, ports = self.run, self.args, self.work, self.hub, self.fx["ports"]
        g = guestmod.Guest(
            self.pieces["kernel"] / "vmlinuz", self.pieces["initrd"], work / "disk.img",
            work / "serial.log",
            [(HUB_IP, 8443, hub.addr[1]), (DNS_IP, 53, ports["DNS_PORT"]),
             (WWW_IP, 80, ports["HTTP_PORT"]), (WWW_IP, 443, ports["HTTPS_PORT"])],
            append="ro" if args.system == "image" else "")
        run.guest = g
        run.logs["serial console"] = work / "serial.log"
        return g

    def first_boot(self):
        hub = self.hub
        g = self.boot()
        # The hub is watched while the guest boots, so the time to enrolment
        # is when the hub first shows the node online.
        def online():
            g.alive("enrolment")
            return [n for n in hub.nodes() if n.get("status") == "online"]
        nodes = wait_for(online, 300, "node online at the hub", interval=0.5)
        t_enrolled = g.uptime()
        ready = g.wait_console(r"VQ-READY boot=(\S+)", 120, "multi-user (VQ-READY)")
        t_ready = g.uptime()
        expect(len(hub.nodes()) == 1, f"expected one node, hub has {hub.nodes()}")
        n = nodes[0]
        self.node = n["id"]
        expect(json.dumps(n).find(f'"{COUNTRY}"') >= 0,
               f"node {n['id']} lacks its declared country {COUNTRY}: {n}")
        rc, status = g.check("status")
        expect(rc == 0 and "enrolled" in status.lower(),
               f"status file does not say enrolled:\n{status}")
        rc, vol = g.check("volunteer")
        expect(rc == 0 and self.token not in vol and "<present>" not in vol,
               f"the token is still in vantage.toml on the boot partition:\n{vol}")
        self.boot_id = ready.group(1)
        return {"node": n["id"], "multi-user_s": round(t_ready, 1),
                "boot_to_enrolled_s": round(t_enrolled, 1)}

    def approved_jobs(self):
        hub, node, (alice, bob, _) = self.hub, self.node, self.approvers
        probes = {
            "dns-secure": ({"cmd": "dns", "args": {
                "name": "www.secure.test", "qtype": "A", "resolver": f"{DNS_IP}:53",
                "transport": "tcp", "dnssec": True, "nsid": True}},
                lambda d: (d.get("dnssec") or {}).get("verdict") == "secure"
                and "192.0.2.10" in json.dumps(d.get("answers"))),
            "dns-bogus": ({"cmd": "dns", "args": {
                "name": "www.bogus.test", "qtype": "A", "resolver": f"{DNS_IP}:53",
                "transport": "tcp", "dnssec": True}},
                lambda d: (d.get("dnssec") or {}).get("verdict") == "bogus"
                and d.get("rcode") == "NOERROR"),
            "http": ({"cmd": "http", "args": {"url": f"http://{WWW_IP}/",
                                              "headers": ["x-fixture"]}},
                     lambda d: d.get("status") == 200
                     and d.get("body_sha256") == hashlib.sha256(FIXTURE_BODY).hexdigest()),
            "tls": ({"cmd": "tls", "args": {"host": WWW_IP, "port": 443, "sni": "localhost"}},
                    lambda d: "vantage fixture CA" in json.dumps(d.get("chain"))),
            "tcp": ({"cmd": "tcp", "args": {"host": WWW_IP, "port": 80}},
                    lambda d: d.get("peer") == f"{WWW_IP}:80"),
            "ping": ({"cmd": "ping", "args": {"host": GATEWAY, "count": 2}},
                     lambda d: d.get("received", 0) > 0),
            "traceroute": ({"cmd": "traceroute", "args": {
                "host": GATEWAY, "protocol": "icmp", "max_hops": 3}},
                lambda d: GATEWAY in json.dumps(d.get("hops"))),
        }
        t = time.monotonic()
        ids = {}
        for name, (probe, _) in probes.items():
            jid = f"vq-{name}-{int(time.time())}"
            ids[name] = jid
            hub.submit(jobs.signed_job(job(jid, probe, node), [alice, bob]))
        first = None
        for name, (_, ok) in probes.items():
            r = one_result(hub, ids[name], 120, name)
            first = first or round(time.monotonic() - t, 1)
            expect(r.get("status") == "ok", f"{name}: status {r.get('status')}: {r}")
            expect(r.get("node_id") == node, f"{name}: result from {r.get('node_id')}")
            expect(ok(r.get("data") or {}), f"{name}: unexpected data: {json.dumps(r)}")
        return {"job_to_first_result_s": first,
                "jobs_to_all_results_s": round(time.monotonic() - t, 1)}

    def refused(self):
        run, work, hub, node = self.run, self.work, self.hub, self.node
        alice = self.approvers[0]
        mallory = [jobs.Approver(n, hashlib.sha256(f"vq-{n}".encode()).digest(), work)
                   for n in ("mallory", "trudy")]
        forged_id = f"vq-forged-{int(time.time())}"
        quorum_id = f"vq-underquorum-{int(time.time())}"
        probe = {"cmd": "http", "args": {"url": f"http://{WWW_IP}/"}}
        hub.publish_raw(f"node.{node}", jobs.signed_job(job(forged_id, probe, node), mallory))
        hub.publish_raw(f"node.{node}", jobs.signed_job(job(quorum_id, probe, node), [alice]))
        # Anyone can put junk on a stream, so such refusals are counted and
        # reported with the heartbeat, not queued as results (issue #14).
        for jid in (forged_id, quorum_id):
            wait_for(lambda: f"refused job {jid}" in run.guest.check("agent-log")[1], 90,
                     f"agent log saying it refused {jid}")
        wanted = {"unknown-approver", "too-few-approvals"}

        def counted():
            n = next(n for n in hub.nodes() if n["id"] == node)
            return wanted <= set(n.get("refused_totals") or {}) and n["refused_totals"]
        totals = wait_for(counted, 120, f"refusal counts {sorted(wanted)} at the hub")
        rc, log = run.guest.check("agent-log")
        for jid in (forged_id, quorum_id):
            expect(not hub.results(jid), f"{jid}: a result was stored for a refused job")
            expect(f"job {jid} run" not in log, f"agent ran {jid}:\n{log[-2000:]}")
        return {"refused_totals": totals}

    def health(self):
        run, args = self.run, self.args
        g = run.guest
        rc, failed = g.check("failed")
        expect(rc == 0 and not failed.strip(), f"systemctl --failed is not empty:\n{failed}")
        rc, cycles = g.check("cycles")
        expect(rc == 1 and not cycles.strip(), f"ordering cycles in the journal:\n{cycles}")
        rc, log = g.check("agent-log")
        expect(rc == 0 and "subscribed" in log, f"agent's log not in the journal:\n{log}")
        rc, release = g.check("os-release")
        if args.system == "image":
            expect(rc == 0 and "NAME=Buildroot" in release
                   and "IMAGE_ID=vantage-qemu_aarch64" in release,
                   f"the guest is not the Buildroot image:\n{release}")
        rc, mount = g.check("root-mount")
        fields = mount.split()
        if args.system == "image":
            expect(len(fields) > 3 and "ro" in fields[3].split(","),
                   f"the root file system is not mounted read-only:\n{mount}")
        return {"os": next((l.split("=", 1)[1].strip('"') for l in release.splitlines()
                            if l.startswith("PRETTY_NAME=")), "?")}

    def reboot(self):
        run, hub, node, (alice, _, carol) = self.run, self.hub, self.node, self.approvers
        g = run.guest
        g.poweroff()
        down_id = f"vq-caughtup-{int(time.time())}"
        hub.submit(jobs.signed_job(job(down_id, {"cmd": "tcp", "args": {
            "host": WWW_IP, "port": 80}}, node), [alice, carol]))
        g = self.boot()
        m = g.wait_console(r"VQ-READY boot=(\S+)", 300, "multi-user after reboot")
        expect(m.group(1) != self.boot_id, "same boot id after reboot")
        t = time.monotonic()
        r = one_result(hub, down_id, 180, "job published while the node was down")
        expect(r.get("status") == "ok", f"caught-up job: {r}")
        nodes = hub.nodes()
        expect(len(nodes) == 1 and nodes[0]["id"] == node,
               f"a second enrolment happened: {nodes}")
        rc, status = g.check("status")
        expect("enrolled" in status.lower(), f"status after reboot:\n{status}")
        rc, plog = g.check("provision-log")
        expect(node in plog and "enrolling with" not in plog,
               f"provisioning after reboot should only confirm {node}:\n{plog}")
        return {"boot_to_caught_up_result_s": round(g.uptime(), 1),
                "after_ready_s": round(time.monotonic() - t, 1)}

    def power_cut(self):
        run, hub, node, (alice, bob, _) = self.run, self.hub, self.node, self.approvers
        g = run.guest
        delay = 25
        jid = f"vq-outbox-{int(time.time())}"
        hub.submit(jobs.signed_job(job(jid, {"cmd": "tcp", "args": {"host": WWW_IP, "port": 80}},
                                       node, not_before=int(time.time()) + delay), [alice, bob]))
        wait_for(lambda: f"accepted job {jid}" in g.check("agent-log")[1], 60,
                 "node accepted the delayed job")
        hub.stop()
        wait_for(lambda: f"job {jid} run" in g.check("agent-log")[1], delay + 60,
                 "node ran the job while the hub is down")
        outbox = wait_for(lambda: g.check("outbox")[1].strip(), 30, "result in the outbox")
        g.kill()
        hub.start()
        g = self.boot()
        g.wait_console(r"VQ-READY", 300, "multi-user after the power cut")
        r = one_result(hub, jid, 180, "result held in the outbox over the power cut")
        expect(r.get("status") == "ok", f"outbox result: {r}")
        wait_for(lambda: not g.check("outbox")[1].strip(), 60, "outbox emptied after delivery")
        expect(len(hub.results(jid)) == 1, "the outbox result arrived more than once")
        return {"outbox": len(outbox.splitlines())}

    def publish(self, version, binary, target=AARCH64):
        """A release of binary for target, signed by alice and bob, at the hub."""
        alice, bob, _ = self.approvers
        self.hub.release(jobs.signed_release(jobs.agent_release(version, {target: binary}),
                                             [alice, bob]))
        self.hub.upload(version, target, binary)

    def running(self, want, timeout, what):
        """Waits until the hub's entry of the node satisfies want; returns it."""
        return wait_for(lambda: (lambda e: e if want(e) else None)(self.hub.node(self.node)),
                        timeout, what, interval=3)

    def update(self):
        """Step 7: the node fetches release 0.2.0; QEMU is killed as soon as it
        verified it (mid-download); it boots on a good version and completes."""
        run, args = self.run, self.args
        g = run.guest
        t = time.monotonic()
        self.publish("0.2.0", release_binary(args, "0.2.0", AARCH64))
        wait_for(lambda: "release 0.2.0 verified" in g.check("agent-log")[1], 180,
                 "the node verified release 0.2.0", interval=2)
        g.kill()
        g = self.boot()
        g.wait_console(r"VQ-READY", 300, "multi-user after the power cut in the update")
        log = wait_for(lambda: (lambda l: l if "starting as node" in l else None)(
            g.check("agent-log")[1]), 120, "an agent started after the power cut")
        booted = log.split(" starting as node")[0].rsplit("vantage-agent ", 1)[-1]
        expect(booted in (IMAGE_VERSION, "0.2.0"), f"after the power cut: agent {booted}")
        e = self.running(lambda e: e.get("agent_version") == "0.2.0" and e.get("from_release"),
                         400, "the node runs release 0.2.0")
        log = g.check("agent-log")[1]
        expect("starting release 0.2.0 from a sealed copy" in log, "no launch in the log")
        wait_for(lambda: '"confirmed": true' in g.check("releases")[1], 120,
                 "release 0.2.0 confirmed on the node")
        rc, failed = g.check("failed")
        expect(not failed.strip(), f"failed units after the update: {failed}")
        return {"booted_after_cut": booted, "target": e.get("target"),
                "update_s": round(time.monotonic() - t, 1)}

    def failing_release(self):
        """Step 8: 0.2.1 exits before its first heartbeat; the launcher goes
        back to 0.2.0 and the node reports 0.2.1 failed."""
        t = time.monotonic()
        self.publish("0.2.1", release_binary(self.args, "0.2.1", AARCH64))
        e = self.running(lambda e: (e.get("failed_release") or {}).get("version") == "0.2.1",
                         500, "the node reports release 0.2.1 failed")
        expect(e["failed_release"]["code"] == "release-rolled-back", f"{e['failed_release']}")
        self.running(lambda e: e.get("agent_version") == "0.2.0", 120, "back on 0.2.0")
        log = self.run.guest.check("agent-log")[1]
        expect("fail-after-start" in log, "the failing build did not run")
        return {"rollback_s": round(time.monotonic() - t, 1)}

    def refused_release(self):
        """Step 9: the hub refuses a release signed by one approver; a hub that
        serves other bytes than the signed ones (here: changed on its disk) gets
        the release refused by the node, nothing stored, nothing run."""
        hub, (alice, bob, _) = self.hub, self.approvers
        g = self.run.guest
        good = release_binary(self.args, "0.2.0", AARCH64)
        rel = jobs.agent_release("0.2.2", {AARCH64: good})
        try:
            hub.release(jobs.signed_release(rel, [alice]))
            raise StepFailed("the hub took a release signed by one approver of two")
        except hubmod.HubError as err:
            expect("too-few-approvals" in str(err), f"under-quorum release: {err}")
        hub.release(jobs.signed_release(rel, [alice, bob]))
        hub.upload("0.2.2", AARCH64, good)
        tampered = bytearray(good)
        tampered[len(good) // 2] ^= 1
        (self.work / "hub/releases/0.2.2" / AARCH64 / "vantage-agent").write_bytes(tampered)
        e = self.running(lambda e: (e.get("failed_release") or {}).get("version") == "0.2.2",
                         300, "the node reports release 0.2.2 refused")
        expect(e["failed_release"]["code"] == "release-hash-mismatch", f"{e['failed_release']}")
        expect(e.get("agent_version") == "0.2.0", f"the node left 0.2.0: {e}")
        stored = g.check("releases")[1]
        expect("0.2.2" not in stored.split("{")[0], f"release 0.2.2 stored: {stored}")
        expect("release 0.2.2 installed" not in g.check("agent-log")[1],
               "the node installed 0.2.2")
        return {"refused": e["failed_release"]["code"]}

    def revoke(self):
        run, work, hub, node = self.run, self.work, self.hub, self.node
        g = run.guest
        hub.revoke(node)
        expect(any(n["id"] == node and n["status"] == "revoked" for n in hub.nodes()),
               "hub does not list the node as revoked")

        def says_revoked():
            log = g.check("agent-log")[1]
            status = g.check("status")[1]
            return "has been revoked" in log and "vantage node: REVOKED" in status
        wait_for(says_revoked, 120, "agent log and status file saying the node is revoked",
                 interval=3)
        # Stopped for good: exit 77 is not restarted (RestartPreventExitStatus).
        time.sleep(15)
        units = g.check("units")[1].split("\n\n")
        agent = next((u for u in units if "Id=vantage-agent.service" in u), "")
        expect("ActiveState=failed" in agent and "Result=exit-code" in agent,
               f"the agent is not stopped after revocation: {agent}")
        expect(g.check("agent-log")[1].count("has been revoked") == 1,
               "the agent was started again after revocation")
        g.poweroff()
        # The card as the volunteer's computer sees it afterwards.
        disk = work / "disk.img"
        files = testsys.fat_list(disk)
        vol = testsys.fat_read(disk, "vantage.toml") or b""
        status = testsys.fat_read(disk, "vantage-status.txt") or b""
        expect(self.token.encode() not in vol, f"token still on the boot partition: {vol!r}")
        expect(b"vantage node: REVOKED" in status, f"the status file on the boot partition "
               f"does not say REVOKED: {status!r} (files: {files})")


def qemu_part(run, args, cache, work, fx):
    """The aarch64 guest: steps 1-10."""
    QemuPart(run, args, cache, work, fx).steps()


def armv6_part(run, args, work, fx):
    """ARMv6 binaries under qemu-arm-static -cpu arm1176: enrol -> job -> results."""
    qemu = ["qemu-arm-static", "-cpu", "arm1176"]
    bins = Path(args.bin_dir) / ARMV6
    st = {}
    d = work / "armv6"
    d.mkdir(exist_ok=True)

    def start_agent():
        # QEMU_CPU: a release the agent executes (through binfmt_misc) runs
        # on the same CPU model.
        with open(d / "agent.log", "ab") as out:
            st["agent"] = subprocess.Popen(
                qemu + [str(bins / "vantage-agent"), "--config", str(d / "agent.toml"),
                        "--data-dir", str(d / "data")],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, env=dict(os.environ, QEMU_CPU="arm1176"))

    def enrol():
        for b in ("vantage-agent", "vantage-provision"):
            expect((bins / b).is_file(), f"{bins / b} missing: run make agent")
        approvers = [jobs.Approver(n, hashlib.sha256(f"vq6-{n}".encode()).digest(), d)
                     for n in ("alice", "bob")]
        (d / "policy.json").write_text(json.dumps(jobs.make_policy(approvers, 2)))
        hub = hubmod.Hub(args.hub_bin, d / "hub", d / "hub.log", ["127.0.0.1"],
                         d / "policy.json")
        run.hubs.append(hub)
        run.logs["ARMv6 hub log"] = d / "hub.log"
        hub.start()
        st.update(hub=hub, approvers=approvers)
        url = f"https://127.0.0.1:{hub.addr[1]}"
        (d / "boot").mkdir(exist_ok=True)
        (d / "data").mkdir(exist_ok=True)
        (d / "boot/vantage.toml").write_text(
            f'hub = "{url}"\ntoken = "{hub.token(COUNTRY)}"\ncountry = "{COUNTRY}"\n')
        t = time.monotonic()
        sh(qemu + [str(bins / "vantage-provision"), "--once", "--boot-dir", str(d / "boot"),
                   "--data-dir", str(d / "data"), "--ca", hub.ca,
                   "--wpa-conf", str(d / "wpa.conf"), "--hostname-file", str(d / "hostname")])
        t_enrol = time.monotonic() - t
        (d / "agent.toml").write_text(
            f'ca = "{hub.ca}"\npolicy = "{d / "policy.json"}"\n'
            + agent_config(fx["FIXTURE_TRUST_ANCHOR"]).decode())
        run.logs["ARMv6 agent log"] = d / "agent.log"
        start_agent()

        def online():
            if st["agent"].poll() is not None:
                raise StepFailed(f"the ARMv6 agent exited ({st['agent'].returncode})")
            return [n for n in hub.nodes() if n.get("status") == "online"]
        nodes = wait_for(online, 120, "ARMv6 node online")
        st["node"] = nodes[0]["id"]
        return {"enrol_s": round(t_enrol, 1), "node": st["node"]}

    run.step("ARMv6 (arm1176): provisioning enrols with a token, agent online", enrol)

    def job_results():
        hub, (alice, bob), node = st["hub"], st["approvers"], st["node"]
        dns_host, _, dns_port = fx["FIXTURE_DNS"].rpartition(":")
        checks = {
            "dns": ({"cmd": "dns", "args": {"name": "www.secure.test", "resolver":
                                            f"{dns_host}:{dns_port}", "dnssec": True}},
                    lambda dd: (dd.get("dnssec") or {}).get("verdict") == "secure"),
            "http": ({"cmd": "http", "args": {"url": fx["FIXTURE_HTTP_URL"]}},
                     lambda dd: dd.get("status") == 200),
        }
        t = time.monotonic()
        for name, (probe, _) in checks.items():
            hub.submit(jobs.signed_job(job(f"vq6-{name}", probe, node), [alice, bob]))
        for name, (_, ok) in checks.items():
            r = one_result(hub, f"vq6-{name}", 90, f"ARMv6 {name}")
            expect(r.get("status") == "ok" and ok(r.get("data") or {}),
                   f"ARMv6 {name}: {json.dumps(r)}")
        return {"job_to_results_s": round(time.monotonic() - t, 1)}

    def update():
        """Release 0.2.0 for ARMv6: the agent installs it and exits; started
        again (as systemd would), the launcher runs it from a sealed memfd
        (binfmt_misc hands the ARM program to qemu-arm)."""
        hub, (alice, bob), node = st["hub"], st["approvers"], st["node"]
        binfmt = Path("/proc/sys/fs/binfmt_misc/qemu-arm")
        if not binfmt.exists():
            sh(["update-binfmts", "--enable", "qemu-arm"])
        expect(binfmt.exists(), "binfmt_misc has no qemu-arm entry (bash scripts/deps.sh qemu)")
        binary = release_binary(args, "0.2.0", ARMV6)
        hub.release(jobs.signed_release(jobs.agent_release("0.2.0", {ARMV6: binary}),
                                        [alice, bob]))
        hub.upload("0.2.0", ARMV6, binary)
        t, exits = time.monotonic(), []

        def updated():
            if st["agent"].poll() is not None:
                exits.append(st["agent"].returncode)
                expect(len(exits) < 3, f"the ARMv6 agent exited {exits}")
                start_agent()
            e = hub.node(node)
            return e.get("agent_version") == "0.2.0" and e.get("from_release")
        wait_for(updated, 600, "the ARMv6 node runs release 0.2.0", interval=2)
        log = (d / "agent.log").read_text(errors="replace")
        expect("starting release 0.2.0 from a sealed copy" in log, "no launch in the log")
        expect(exits == [75], f"exit codes {exits}, expected one exit 75 after the switch")
        return {"update_s": round(time.monotonic() - t, 1)}

    try:
        run.step("ARMv6 (arm1176): signed jobs (dns with DNSSEC, http) -> results", job_results)
        run.step("ARMv6 (arm1176): update to release 0.2.0, run from a sealed copy, reported",
                 update)
    finally:
        if "agent" in st:
            st["agent"].terminate()
            st["agent"].wait(10)
        if "hub" in st:
            st["hub"].stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=["all", "qemu", "armv6"], default="all")
    ap.add_argument("--cache", default=os.environ.get("VQ_CACHE", REPO / "build/qemu-cache"))
    ap.add_argument("--work", default=os.environ.get("VQ_WORK", REPO / "build/qemu-run"))
    ap.add_argument("--bin-dir", default=REPO / "out/bin")
    ap.add_argument("--hub-bin", default=REPO / "target/debug/vantage-hub")
    ap.add_argument("--release-dir", default=REPO / "out/bin-releases",
                    help="the agent builds installed as releases (make agent-releases)")
    ap.add_argument("--system", choices=["image", "debian"], default="image",
                    help="image: the Buildroot image (make image BOARD=qemu_aarch64); debian: "
                         "the quick Debian stand-in with --overlay (default image)")
    ap.add_argument("--overlay", default=REPO / "image/overlay",
                    help="--system debian: root file system overlay (default image/overlay)")
    args = ap.parse_args()
    # mkfs.*, sfdisk, depmod and update-binfmts live in sbin.
    os.environ["PATH"] += ":/usr/local/sbin:/usr/sbin:/sbin"
    work = Path(args.work).resolve()
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    run = Run(work)
    fx = {}

    def prepare():
        n = jobs.self_check(REPO, work)
        fx.update(start_fixtures(work))
        return {"testvectors": n}

    try:
        run.step("check signing against proto/testvectors, start the fixtures", prepare)
        if args.part in ("all", "armv6"):
            armv6_part(run, args, work, fx)
        if args.part in ("all", "qemu"):
            qemu_part(run, args, Path(args.cache), work, fx)
    finally:
        if run.guest:
            run.guest.kill()
        for h in run.hubs:
            h.stop()
        stop_fixtures(work)
    run.summary()
    print("qemu-test: all steps passed")


if __name__ == "__main__":
    main()
