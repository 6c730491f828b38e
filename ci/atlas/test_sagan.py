"""RIPE's own parser (ripe.atlas.sagan) reads vantage's Atlas export.

agent/tests/it/atlas.rs runs a real hub and agent on loopback and writes, per
job, the native result and the hub's `?format=atlas` answer to the file in
VANTAGE_ATLAS_OUT. Every figure sagan reads is compared with the native one.
"""

import base64
import datetime
import json
import os

import pytest
from ripe.atlas.sagan import Result

with open(os.environ["VANTAGE_ATLAS_OUT"]) as f:
    CASES = {c["id"]: c for c in json.load(f)}


def parse(job):
    case = CASES[job]
    # ACTION_FAIL: a malformed result raises instead of warning.
    r = Result.get(
        case["atlas"],
        on_error=Result.ACTION_IGNORE,
        on_malformation=Result.ACTION_FAIL,
    )
    return r, case["native"]


def common(r, native, kind):
    assert r.type == {"sslcert": "ssl"}.get(kind, kind)  # sagan names sslcert "ssl"
    assert r.firmware >= 5000
    assert r.measurement_id >= 1_000_000
    assert isinstance(r.probe_id, int) and r.probe_id >= 1
    assert r.created.timestamp() == native["started_ms"] // 1000


def test_every_case_was_generated():
    assert set(CASES) == {
        "dns-ok", "dns-tcp-nx", "dns-timeout", "dns-refused", "ping-ok", "ping-lost",
        "trace-ok", "http-ok", "http-refused", "http-timeout", "tls-ok",
        "tls-handshake-error",
    }


@pytest.mark.parametrize("job", ["dns-ok", "dns-tcp-nx"])
def test_dns_answer_decoded_from_abuf(job):
    r, native = parse(job)
    common(r, native, "dns")
    assert not r.is_error and not r.is_malformed
    d = native["data"]
    assert len(r.responses) == 1
    resp = r.responses[0]
    assert resp.response_time == pytest.approx(d["query_ms"], abs=0.001)
    assert resp.destination_address == d["server"].rsplit(":", 1)[0]
    abuf = resp.abuf
    assert abuf is not None and not abuf.is_malformed
    assert abuf.header.return_code == d["rcode"]
    assert [q.name for q in abuf.questions] == [d["qname"].rstrip(".") + "."]
    assert [q.type for q in abuf.questions] == [d["qtype"]]
    got = [(a.name, a.type, a.ttl) for a in abuf.answers]
    want = [(a["name"], a["type"], a["ttl"]) for a in d["answers"]]
    assert got == want
    for a, n in zip(abuf.answers, d["answers"]):
        if a.type == "A" or a.type == "AAAA":
            assert a.address == n["data"]
    assert [a.name for a in abuf.authorities] == [a["name"] for a in d["authority"]]
    # The wire form sagan decoded is the agent's, byte for byte.
    assert base64.b64decode(resp.raw_data["abuf"]) == base64.b64decode(d["abuf"])


def test_dns_ok_has_answers_and_a_dnssec_verdict_outside_atlas():
    r, native = parse("dns-ok")
    assert len(r.responses[0].abuf.answers) >= 1
    assert r.raw_data["vantage"]["dnssec"] == native["data"]["dnssec"]
    assert native["data"]["dnssec"]["verdict"] == "secure"


def test_dns_nxdomain():
    r, _ = parse("dns-tcp-nx")
    assert r.responses[0].abuf.header.return_code == "NXDOMAIN"
    assert r.responses[0].protocol == "TCP"


def test_dns_timeout():
    r, native = parse("dns-timeout")
    common(r, native, "dns")
    assert native["status"] == "timeout"
    assert r.is_error
    assert r.error_message == "Timeout: 1000"
    assert r.responses == []


def test_dns_refused():
    r, native = parse("dns-refused")
    common(r, native, "dns")
    assert native["status"] == "error"
    assert r.is_error
    assert native["reason"] in r.error_message
    assert r.raw_data["vantage"]["code"] == native["code"] == "connection-refused"


def test_ping_rtts():
    r, native = parse("ping-ok")
    common(r, native, "ping")
    d = native["data"]
    assert r.packets_sent == d["sent"]
    assert r.packets_received == d["received"] > 0
    assert [p.rtt for p in r.packets] == [p["rtt_ms"] for p in d["packets"]]
    assert r.rtt_min == pytest.approx(d["min_ms"], abs=0.001)
    assert r.rtt_max == pytest.approx(d["max_ms"], abs=0.001)
    assert r.rtt_average == pytest.approx(d["avg_ms"], abs=0.001)
    assert r.destination_address == d["target"]
    assert r.af == 4


def test_ping_all_lost():
    r, native = parse("ping-lost")
    common(r, native, "ping")
    assert native["status"] == "error"
    assert r.packets_sent == 2
    assert r.packets_received == 0
    assert [p.rtt for p in r.packets] == [None, None]
    # avg −1 in the export: sagan reads "no RTT", not a figure.
    assert r.rtt_average is None and r.rtt_min is None and r.rtt_max is None
    assert r.raw_data["vantage"]["reason"] == native["reason"]


def test_traceroute_hops():
    r, native = parse("trace-ok")
    common(r, native, "traceroute")
    d = native["data"]
    assert r.destination_address == d["target"]
    assert [h.index for h in r.hops] == [h["ttl"] for h in d["hops"]]
    for hop, want in zip(r.hops, d["hops"]):
        got = [(p.origin, p.rtt) for p in hop.packets if p.origin]
        assert got == list(zip(want["addrs"], want["rtts_ms"]))
    assert r.destination_ip_responded
    assert r.ip_path[-1][0] == "127.0.0.1"


def test_http_ok():
    r, native = parse("http-ok")
    common(r, native, "http")
    d = native["data"]
    assert not r.is_error
    (resp,) = r.responses
    assert resp.code == d["status"] == 200
    assert resp.response_time == pytest.approx(d["total_ms"])
    assert resp.head_size == d["head_bytes"]
    assert resp.body_size == d["body_bytes"]
    assert resp.destination_address == d["peer"].rsplit(":", 1)[0]


@pytest.mark.parametrize("job", ["http-refused", "http-timeout"])
def test_http_failure_is_an_error_without_status(job):
    case = CASES[job]
    # Real Atlas failures lack `res` too, and sagan calls them malformed; only
    # the error is asserted here.
    r = Result.get(case["atlas"], on_error=Result.ACTION_IGNORE,
                   on_malformation=Result.ACTION_IGNORE)
    assert r.type == "http"
    # sagan records an `err` on the response it belongs to.
    (resp,) = r.responses
    assert resp.is_error
    assert resp.error_message == case["native"]["reason"]
    assert resp.code is None


def test_sslcert_chain():
    r, native = parse("tls-ok")
    common(r, native, "sslcert")
    d = native["data"]
    assert not r.is_error
    assert r.port == 443 or r.port == int(d["peer"].rsplit(":", 1)[1])
    assert r.version == d["version"].removeprefix("TLS ")
    assert r.response_time == pytest.approx(d["total_ms"])
    assert r.time_to_connect == pytest.approx(d["connect_ms"])
    assert len(r.certificates) == len(d["chain"])
    for cert, want in zip(r.certificates, d["chain"]):
        assert "CN=" + cert.subject_cn in want["subject"]
        assert cert.valid_until == datetime.datetime.fromtimestamp(
            want["not_after"], datetime.timezone.utc)


def test_sslcert_handshake_failure():
    r, native = parse("tls-handshake-error")
    common(r, native, "sslcert")
    assert native["status"] == "error"
    assert r.is_error
    assert r.error_message == native["reason"]
    assert r.certificates == []
