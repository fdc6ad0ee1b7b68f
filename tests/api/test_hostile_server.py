"""Issue 19, end to end on a real ``geofence serve`` process: connection hygiene,
amplification limits, throttling and the smaller findings, as an attacker on the
loopback would try them (raw sockets where the finding is about the connection).

One server for the module, with short timeouts so the tests are quick: headers within
1 s, a body within 2 s, idle keep-alive 1 s, at most 40 connections, 10 failed
authentications per address and minute, one operator key with a per-key rate.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from api.testing.servetest import Server, check_in

ENV = {
    "GEOFENCE_HEADER_TIMEOUT_S": "1",
    "GEOFENCE_BODY_TIMEOUT_S": "2",
    "GEOFENCE_KEEPALIVE_TIMEOUT_S": "1",
    "GEOFENCE_MAX_CONNECTIONS": "40",
    "GEOFENCE_AUTH_FAILURES_PER_MIN": "10",
    "GEOFENCE_LOG_LEVEL": "info",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, seed_file: Path) -> Iterator[Server]:
    work = tmp_path_factory.mktemp("hostile")
    srv = Server(work, f"sqlite:///{work / 'var' / 'geofence.db'}", seed_file, extra_env=ENV)
    srv.start()
    for who in srv.keys:  # every key verified once (the throttle lets known keys through)
        httpx.get(srv.url + "/v1/zones", params={"limit": 1}, headers=srv.h(who), timeout=10)
    yield srv
    srv.stop()


def _connect(server: Server) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    s.settimeout(10)
    return s


def _read_all(s: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and when it closed (monotonic)."""
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data, time.monotonic()


def _trickle(s: socket.socket, byte: bytes, every_s: float = 0.2, n: int = 40) -> float | None:
    """Send ``byte`` every ``every_s`` seconds until the server answers or closes (its
    time, then the socket is closed) or ``n`` bytes went out (None: never cut off)."""
    closed = None
    s.settimeout(every_s)
    for _ in range(n):
        try:
            s.sendall(byte)
            if s.recv(4096) is not None:  # an answer (408) or the end of the stream
                closed = time.monotonic()
                break
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            closed = time.monotonic()
            break
    s.close()
    return closed


# ---------------------------------------------------------------------------- connections
def test_an_idle_connection_is_answered_408_and_closed(server: Server) -> None:
    s = _connect(server)
    t0 = time.monotonic()
    data, t1 = _read_all(s)
    s.close()
    assert data.startswith(b"HTTP/1.1 408"), data[:200]
    assert 0.8 < t1 - t0 < 3.0


def test_headers_trickled_a_byte_at_a_time_are_cut_off(server: Server) -> None:
    s = _connect(server)
    s.sendall(b"POST /v1/checks HTTP/1.1\r\nHost: x\r\n")
    t0 = time.monotonic()
    closed = _trickle(s, b"X")
    assert closed is not None, "the trickle was never cut off"
    assert closed - t0 < 3.0


def test_a_body_trickled_is_cut_off(server: Server) -> None:
    s = _connect(server)
    key = server.keys["meituan"]
    s.sendall(
        b"POST /v1/checks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"X-API-Key: {key}\r\nContent-Length: 5000\r\n\r\n".encode()
    )
    t0 = time.monotonic()
    closed = _trickle(s, b" ")
    assert closed is not None, "the body trickle was never cut off"
    assert closed - t0 < 4.0
    # the client that went away mid-body: no traceback in the log
    time.sleep(0.3)
    assert "Traceback" not in server.stderr()


def test_an_idle_keep_alive_connection_is_closed(server: Server) -> None:
    s = _connect(server)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    t0 = time.monotonic()
    data, t1 = _read_all(s)
    s.close()
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
    assert b"408" not in data  # the keep-alive timeout closes it quietly
    assert 0.8 < t1 - t0 < 3.0


def test_connections_over_the_cap_are_refused_at_once_and_service_resumes(
    server: Server,
) -> None:
    held = [_connect(server) for _ in range(40)]
    time.sleep(0.2)
    over = _connect(server)
    t0 = time.monotonic()
    data, t1 = _read_all(over)
    over.close()
    assert data.startswith(b"HTTP/1.1 503"), data[:200]
    assert b"retry-after" in data.lower()
    assert t1 - t0 < 0.5
    # the held ones time out (header timeout), then the server serves again
    for s in held:
        _read_all(s)
        s.close()
    r = httpx.get(server.url + "/healthz", timeout=5)
    assert r.status_code == 200
    # a flood makes a few log lines, not one per connection
    lines = [ln for ln in server.stderr().splitlines() if "connections closed" in ln]
    assert 1 <= len(lines) <= 5


def test_a_client_disconnecting_mid_body_logs_no_traceback(server: Server) -> None:
    before = len(server.stderr())
    for _ in range(3):
        s = _connect(server)
        s.sendall(
            b"POST /v1/checks/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"X-API-Key: {server.keys['meituan']}\r\nContent-Length: 100000\r\n\r\n".encode()
            + b'{"checks": ['
        )
        time.sleep(0.1)
        s.close()
    time.sleep(0.5)
    err = server.stderr()[before:]
    assert "Traceback" not in err
    assert err.count("disconnected") == 3  # one line each


# ---------------------------------------------------------------------------- throttling
def test_failed_keys_are_throttled_per_address_honest_keys_still_served(server: Server) -> None:
    good = server.h("hellobike")
    with httpx.Client(base_url=server.url, timeout=10) as c:
        assert c.get("/v1/zones", params={"limit": 1}, headers=good).status_code == 200
        codes = [
            c.get("/v1/zones", headers={"X-API-Key": f"gfk_bad{k}"}).status_code for k in range(30)
        ]
        assert codes[:10] == [401] * 10
        assert set(codes[10:]) == {429}
        r = c.get("/v1/zones", headers={"X-API-Key": "gfk_bad_again"})
        assert r.status_code == 429
        assert r.headers["content-type"].startswith("application/problem+json")
        assert int(r.headers["retry-after"]) >= 1
        assert r.headers["ratelimit-policy"] == '"auth";q=10;w=60'
        assert r.headers["ratelimit"].startswith('"auth";r=0;t=')
        assert r.json()["type"] == "/problems/too-many-requests"
        # a key this process verified before is still looked up and served
        assert c.get("/v1/zones", params={"limit": 1}, headers=good).status_code == 200


# ---------------------------------------------------------------------------- amplification
def _size_and_status(server: Server, path: str, content: bytes, who: str) -> tuple[int, int, Any]:
    r = httpx.post(
        server.url + path,
        content=content,
        headers=server.h(who) | {"Content-Type": "application/json"},
        timeout=60,
    )
    return r.status_code, len(r.content), r.json()


def test_amplification_probes_answer_small_and_fast(server: Server, small_fc) -> None:
    one_mb_of_empty_checks = b'{"checks":[' + b",".join([b"{}"] * 333_000) + b"]}"
    t0 = time.monotonic()
    status, size, doc = _size_and_status(
        server, "/v1/checks/batch", one_mb_of_empty_checks, "meituan"
    )
    assert status == 413 and size < 2000, doc
    assert time.monotonic() - t0 < 2.0
    ten_thousand_empty = b'{"checks":[' + b",".join([b"{}"] * 10_000) + b"]}"
    status, size, doc = _size_and_status(server, "/v1/checks/batch", ten_thousand_empty, "meituan")
    assert status == 422 and size < 50_000
    assert len(doc["errors"]) == 100
    assert doc["errors_omitted"] == 10_000 * 5 - 100  # five required fields each
    unknown_keys = orjson.dumps({f"k{i}": 1 for i in range(100_000)})  # 1.2 MB
    status, size, doc = _size_and_status(server, "/v1/checks", unknown_keys, "meituan")
    assert status == 413 and size < 2000 and "GEOFENCE_MAX_CHECK_BYTES" in doc["detail"]
    unknown_keys = orjson.dumps({f"k{i}": 1 for i in range(10_000)})  # 110 KB
    status, size, doc = _size_and_status(server, "/v1/checks", unknown_keys, "meituan")
    assert status == 422 and size < 2000
    assert doc["errors"][0]["type"] == "too_many_members"
    body = check_in(small_fc["features"][0], "T-many-fixes")
    body["fixes"] = body["fixes"] * 51
    status, size, doc = _size_and_status(server, "/v1/checks", orjson.dumps(body), "meituan")
    assert status == 422
    assert doc["errors"][0]["pointer"] == "/fixes"
    empty_features = (
        b'{"type":"FeatureCollection","features":[' + b",".join([b"{}"] * 333_000) + b"]}"
    )
    status, size, doc = _size_and_status(server, "/v1/zone-sets", empty_features, "admin")
    assert status == 422 and size < 2000
    assert doc["errors"][0]["rule"] == "too-many-zones"
    # the service still answers an honest check at once
    t0 = time.monotonic()
    r = httpx.post(
        server.url + "/v1/checks",
        json=check_in(small_fc["features"][0], "T-after"),
        headers=server.h("meituan"),
        timeout=10,
    )
    assert r.status_code == 200
    assert time.monotonic() - t0 < 1.0


def test_the_slow_batch_path_stores_the_checks_as_received(server: Server, small_fc) -> None:
    # a beacon sends the batch through the schema's path; odd spacing and key order
    checks = [check_in(small_fc["features"][k], f"T-as-received-{k}") for k in range(2)]
    checks[0]["beacons"] = [{"id": "ZH-BLE-1", "rssi": -60}]
    texts = [json.dumps(c, indent=1, ensure_ascii=True)[::1] for c in checks]
    texts[1] = texts[1].replace('"trip_id"', '"trip_id" ')
    raw = ('{"checks": [ ' + " ,\n".join(texts) + " ]}").encode()
    r = httpx.post(
        server.url + "/v1/checks/batch",
        content=raw,
        headers=server.h("meituan") | {"Content-Type": "application/json"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    import zstandard
    from sqlalchemy import create_engine, text

    eng = create_engine(server.db_url)
    with eng.connect() as conn:  # the batch's body once, each row pointing into it
        rows = conn.execute(
            text(
                "SELECT c.body, c.body_start, c.body_end, b.body FROM checks c "
                "JOIN batch_bodies b ON b.batch_id = c.batch_id "
                "WHERE c.trip_id LIKE 'T-as-received-%' ORDER BY c.trip_id"
            )
        ).all()
    eng.dispose()
    assert [own for own, *_ in rows] == ["", ""]
    for *_, packed in rows:
        assert zstandard.ZstdDecompressor().decompress(packed) == raw
    assert [raw[start:end].decode() for _, start, end, _ in rows] == texts
