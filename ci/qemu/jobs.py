"""Approvers, the approval policy, signed jobs and signed agent releases for
the end-to-end test.

Implemented independently of the Rust crates on purpose (Python stdlib + the
openssl command line), from ARCHITECTURE.md: canonical JSON, the
`vantage-job-v1` / `vantage-policy-v1` / `vantage-release-v1` byte forms, Ed25519 signatures, key ids.
`self_check` verifies it against proto/testvectors first, so a drift between
the prose, the crate and this test shows up as such.
"""

import base64
import hashlib
import json
import subprocess
import tempfile
import time
from pathlib import Path

# PKCS#8 DER prefix of an Ed25519 private key; the 32-byte seed follows.
_PKCS8_ED25519 = bytes.fromhex("302e020100300506032b657004220420")


def canonical(value):
    """Canonical JSON (RFC 8785 restricted to integers and ASCII keys)."""
    def check(v):
        if isinstance(v, float):
            raise ValueError("canonical JSON has integers only")
        if isinstance(v, int) and not isinstance(v, bool) and abs(v) > 2**53 - 1:
            raise ValueError("integer out of range")
        if isinstance(v, dict):
            for x in v.values():
                check(x)
        if isinstance(v, list):
            for x in v:
                check(x)
    check(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def job_bytes(job):
    """What approvers sign for a job."""
    return b"vantage-job-v1\0" + canonical(job).encode()


def policy_bytes(policy):
    """What approvers sign for a policy."""
    return b"vantage-policy-v1\0" + canonical(policy).encode()


def release_bytes(release):
    """What approvers sign for an agent release."""
    return b"vantage-release-v1\0" + canonical(release).encode()


class Approver:
    """An Ed25519 approver key held as a PEM file for openssl."""

    def __init__(self, name, seed, workdir):
        self.name = name
        self.pem = Path(workdir) / f"approver-{name}.pem"
        der = _PKCS8_ED25519 + seed
        self.pem.write_text("-----BEGIN PRIVATE KEY-----\n"
                            + base64.encodebytes(der).decode()
                            + "-----END PRIVATE KEY-----\n")
        self.pem.chmod(0o600)
        pub_der = subprocess.run(["openssl", "pkey", "-in", str(self.pem), "-pubout",
                                  "-outform", "DER"], capture_output=True, check=True).stdout
        self.public = pub_der[-32:]
        self.key_id = hashlib.sha256(self.public).hexdigest()[:16]

    def sign(self, message):
        """Ed25519 signature of message (64 bytes)."""
        with tempfile.NamedTemporaryFile() as f:
            f.write(message)
            f.flush()
            sig = subprocess.run(["openssl", "pkeyutl", "-sign", "-inkey", str(self.pem),
                                  "-rawin", "-in", f.name], capture_output=True,
                                 check=True).stdout
        if len(sig) != 64:
            raise RuntimeError(f"openssl gave a {len(sig)}-byte Ed25519 signature")
        return sig

    def signature(self, message):
        """The wire form: {"key_id", "sig"}."""
        return {"key_id": self.key_id, "sig": base64.b64encode(self.sign(message)).decode()}


def make_policy(approvers, threshold, network="vq-test", serial=1):
    """A signed policy file's JSON value with the given approvers."""
    policy = {
        "serial": serial, "network": network, "threshold": threshold,
        "approvers": [{"name": a.name, "key": base64.b64encode(a.public).decode()}
                      for a in approvers],
        "allowed_probes": ["dns", "http", "tls", "tcp", "ping", "traceroute"],
        "limits": {"max_nodes": 10000, "max_spread_secs": 3600,
                   "max_validity_secs": 604800, "min_repeat_secs": 60,
                   "max_jobs_per_target_per_hour": 600},
    }
    msg = policy_bytes(policy)
    return {"policy": policy, "signatures": [a.signature(msg) for a in approvers]}


def signed_job(job, signers):
    """{"job": job, "signatures": [...]} signed by each of signers."""
    msg = job_bytes(job)
    return {"job": job, "signatures": [s.signature(msg) for s in signers]}


def agent_release(version, binaries, confirm_secs=120, validity=3600):
    """An agent release of version: binaries maps a target triple to the
    vantage-agent bytes; offered to everyone at once."""
    now = int(time.time())
    return {"v": 1, "version": version,
            "targets": {t: {"vantage-agent": {"sha256": hashlib.sha256(b).hexdigest(),
                                              "size": len(b)}}
                        for t, b in binaries.items()},
            "rollout": {"waves": [100], "max_rollback_percent": 100,
                        "confirm_secs": confirm_secs},
            "not_before": now - 60, "expires": now + validity, "proposer": "alice"}


def signed_release(release, signers):
    """{"release": release, "signatures": [...]} signed by each of signers."""
    msg = release_bytes(release)
    return {"release": release, "signatures": [s.signature(msg) for s in signers]}


def self_check(repo, workdir):
    """Checks canonical form and signatures against proto/testvectors; returns
    how many vectors were checked."""
    checked = 0
    for f in sorted(Path(repo, "proto/testvectors").glob("job-*.json")):
        v = json.loads(f.read_text())
        if "job" not in v or "canonical" not in v:
            continue
        got = canonical(v["job"])
        if got != v["canonical"]:
            raise AssertionError(f"{f.name}: canonical form differs:\n{got}\n{v['canonical']}")
        for k in v.get("keys", []):
            a = Approver("tv", bytes.fromhex(k["seed_hex"]), workdir)
            if a.key_id != k["key_id"]:
                raise AssertionError(f"{f.name}: key id {a.key_id}, vector says {k['key_id']}")
            want = [s for s in v.get("signatures", []) if s.get("key_id") == a.key_id]
            if not want:
                raise AssertionError(f"{f.name}: no signature by key id {a.key_id}")
            if a.signature(job_bytes(v["job"]))["sig"] != want[0]["sig"]:
                raise AssertionError(f"{f.name}: signature of {a.key_id} differs")
        if job_bytes(v["job"]).hex() != v["signing_bytes_hex"]:
            raise AssertionError(f"{f.name}: signing bytes differ")
        checked += 1
    for f in sorted(Path(repo, "proto/testvectors").glob("release-*.json")):
        v = json.loads(f.read_text())
        if canonical(v["release"]) != v["canonical"]:
            raise AssertionError(f"{f.name}: canonical form differs")
        if release_bytes(v["release"]).hex() != v["signing_bytes_hex"]:
            raise AssertionError(f"{f.name}: signing bytes differ")
        for k in v["keys"]:
            a = Approver("tv", bytes.fromhex(k["seed_hex"]), workdir)
            want = [s["sig"] for s in v["signatures"] if s["key_id"] == a.key_id]
            if want != [a.signature(release_bytes(v["release"]))["sig"]]:
                raise AssertionError(f"{f.name}: signature of {a.key_id} differs")
        checked += 1
    return checked
