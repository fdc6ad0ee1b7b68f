"""Hostile-input bench (issue 19): a real ``geofence serve`` process under each probe of
the issue, while an honest operator keeps sending single checks.

The server is started the README's way (:class:`api.testing.servetest.Server`: a fresh SQLite
database, the bundled 18,300-zone city, default settings), its audit log seeded with
``--rejects`` rejected checks (trip ends off every box, for the hot-spot probes). An
honest client sends one check every ``1 / --rate`` seconds on a keep-alive connection
(open loop: latency counted from the scheduled time, so a stall is not hidden by
waiting), and a sampler reads the server process's resident memory (``VmRSS``) every
10 ms. Then each probe runs alone for a few seconds: the 1 MB and 300 KB bodies of
empty checks, 10,000 empty checks, 100,000 unknown keys, a million fixes, 333,000
empty features, a 10 MB zone id, failed keys in a loop, idle and slowloris
connections, hot spots (defaults, ``radius_m=1e-300``, the largest radius), and four
clients looping ``/v1/zones`` over the world. For each: the answers' statuses and
largest size, the peak RSS growth over the probe's start, the honest checks' p99 and
failures.

Targets (issue 19): an answer <= 1 MB and RSS growth <= 100 MB for any rejected
request; single-check p99 <= 50 ms while a probe runs; no honest request failed.

Writes ``bench/results/hostile.json`` and ``bench/results/hostile.png``. Bounded in
time (about three minutes); traffic to 127.0.0.1 only.

    python -m bench.hostile [--rate 20] [--rejects 50000] [--seconds 4]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

from api.settings import DEFAULT_SEED_FILE
from api.testing.servetest import Server, check_at
from zones.workload import make_trip_ends

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
TARGET_ANSWER = 1 << 20
TARGET_RSS_MB = 100.0
TARGET_P99_MS = 50.0


def _check(lon: float, lat: float, trip: str) -> dict[str, Any]:
    """An honest phone's check: one 4 m fix, quality ``single``."""
    return check_at(lon, lat, trip, accuracy_m=4.0, quality="single")


class RSS:
    """Samples a process's resident memory every ``every_s`` seconds (MB)."""

    def __init__(self, pid: int, every_s: float = 0.01) -> None:
        self.pid, self.every_s = pid, every_s
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def now(self) -> float:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
        return float("nan")

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.monotonic(), self.now()))
            except OSError:
                return
            time.sleep(self.every_s)

    def peak(self, t0: float, t1: float) -> float:
        return max((m for t, m in self.samples if t0 <= t <= t1), default=float("nan"))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _honest(url: str, key: str, bodies: list[bytes], rate: float, stop: Any, out: Any) -> None:
    """The honest operator (in its own process, so that the probes' client threads do
    not delay it): one check every ``1 / rate`` s, open loop; sends its log at the end."""
    h = {"X-API-Key": key, "Content-Type": "application/json"}
    log: list[tuple[float, float, int]] = []
    with httpx.Client(base_url=url, timeout=30) as c:
        t0 = time.monotonic()
        i = 0
        while not stop.is_set():
            at = t0 + i / rate
            wait = at - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                code = c.post("/v1/checks", content=bodies[i % len(bodies)], headers=h).status_code
            except httpx.HTTPError:
                code = 0
            log.append((at, time.monotonic() - at, code))
            i += 1
    out.send(log)


class Honest:
    """:func:`_honest` in a process of its own; latencies from the scheduled time
    (``time.monotonic`` is the same clock in both processes)."""

    def __init__(self, server: Server, bodies: list[bytes], rate: float) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._stop = ctx.Event()
        self._recv, send = ctx.Pipe(duplex=False)
        args = (server.url, server.keys["meituan"], bodies, rate, self._stop, send)
        self._proc = ctx.Process(target=_honest, args=args, daemon=True)
        self._proc.start()
        self.log: list[tuple[float, float, int]] = []

    def stop(self) -> None:
        self._stop.set()
        self.log = self._recv.recv()
        self._proc.join()

    def window(self, t0: float, t1: float) -> dict[str, Any]:
        lat = [s for at, s, _ in self.log if t0 <= at <= t1]
        failed = sum(1 for at, _, code in self.log if t0 <= at <= t1 and code != 200)
        a = np.array(lat) * 1e3 if lat else np.array([np.nan])
        return {
            "honest_checks": len(lat),
            "honest_failed": failed,
            "p50_ms": round(float(np.percentile(a, 50)), 2),
            "p99_ms": round(float(np.percentile(a, 99)), 2),
            "max_ms": round(float(a.max()), 2),
        }


def _post(server: Server, path: str, body: bytes, who: str, **headers: str) -> tuple[int, int]:
    h = server.h(who) | {"Content-Type": "application/json"} | headers
    r = httpx.post(server.url + path, content=body, headers=h, timeout=120)
    return r.status_code, len(r.content)


def _get(server: Server, path: str, who: str, **params: Any) -> tuple[int, int]:
    r = httpx.get(server.url + path, params=params, headers=server.h(who), timeout=120)
    return r.status_code, len(r.content)


def _loop(fn: Callable[[], tuple[int, int]], seconds: float) -> list[tuple[int, int]]:
    out = []
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        out.append(fn())
    return out


def _in_threads(fn: Callable[[], list[tuple[int, int]]], n: int) -> list[tuple[int, int]]:
    results: list[list[tuple[int, int]]] = [[] for _ in range(n)]

    def run(k: int) -> None:
        results[k] = fn()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [x for r in results for x in r]


def _sockets(server: Server, n: int, seconds: float, trickle: bool) -> list[tuple[int, int]]:
    """``n`` connections held ``seconds``: idle, or sending a header byte every 0.5 s.
    Each answers (status, bytes) of what the server sent; status 0: still open."""
    socks = []
    for _ in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        except OSError:
            break
        s.setblocking(False)
        if trickle:
            s.send(b"POST /v1/checks HTTP/1.1\r\nHost: x\r\n")
        socks.append([s, b"", False])
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end and not all(c for _, _, c in socks):
        for item in socks:
            s, data, closed = item
            if closed:
                continue
            try:
                chunk = s.recv(4096)
                item[1] = data + chunk
                item[2] = chunk == b""
            except BlockingIOError:
                if trickle:
                    try:
                        s.send(b"X")
                    except OSError:
                        item[2] = True
            except OSError:
                item[2] = True
        time.sleep(0.5)
    out = []
    for s, data, closed in socks:
        status = int(data[9:12]) if data.startswith(b"HTTP/1.1 ") else (-1 if closed else 0)
        out.append((status, len(data)))
        s.close()
    return out


def probes(server: Server, seconds: float) -> dict[str, Callable[[], list[tuple[int, int]]]]:
    empty_1mb = b'{"checks":[' + b",".join([b"{}"] * 333_000) + b"]}"
    empty_300kb = b'{"checks":[' + b",".join([b"{}"] * 100_000) + b"]}"
    empty_10k = b'{"checks":[' + b",".join([b"{}"] * 10_000) + b"]}"
    unknown_keys = orjson.dumps({f"k{i}": 1 for i in range(100_000)})
    one = _check(113.5, 22.2, "T-big")
    million_fixes = orjson.dumps(one | {"fixes": one["fixes"] * 1_000_000})
    empty_features = (
        b'{"type":"FeatureCollection","features":[' + b",".join([b"{}"] * 333_000) + b"]}"
    )
    fc = json.loads((ROOT / "zones" / "data" / "zhuhai.geojson").read_text(encoding="utf-8"))
    fc["features"] = fc["features"][:50]
    fc["features"][0]["id"] = "Z" * 10_000_000
    long_id = orjson.dumps(fc)

    def failed_keys() -> list[tuple[int, int]]:
        out = []
        with httpx.Client(base_url=server.url, timeout=10) as c:
            t_end = time.monotonic() + seconds
            k = 0
            while time.monotonic() < t_end:
                r = c.get("/v1/zones", headers={"X-API-Key": f"gfk_not_a_key_{k}"})
                out.append((r.status_code, len(r.content)))
                k += 1
        return out

    posts = {  # name: (route, body, key)
        "1 MB of empty checks (333,000)": ("/v1/checks/batch", empty_1mb, "hellobike"),
        "300 KB of empty checks (100,000)": ("/v1/checks/batch", empty_300kb, "hellobike"),
        "10,000 empty checks": ("/v1/checks/batch", empty_10k, "hellobike"),
        "100,000 unknown keys": ("/v1/checks", unknown_keys, "hellobike"),
        "1,000,000 fixes": ("/v1/checks", million_fixes, "hellobike"),
        "333,000 empty features": ("/v1/zone-sets", empty_features, "admin"),
        "10 MB zone id": ("/v1/zone-sets", long_id, "admin"),
    }
    gets = {  # name: (route, key, query)
        "hot spots, defaults": ("/v1/stats/hotspots", "admin", {}),
        "hot spots, radius_m 1e-300": ("/v1/stats/hotspots", "admin", {"radius_m": "1e-300"}),
        "hot spots, radius_m 20 (max)": ("/v1/stats/hotspots", "admin", {"radius_m": 20}),
    }
    world = {"bbox": "-180,-90,180,90", "limit": 10_000}
    out: dict[str, Callable[[], list[tuple[int, int]]]] = {}
    for name, (path, body, who) in posts.items():
        out[name] = partial(_loop, partial(_post, server, path, body, who), seconds)
    out["failed keys, 4 clients"] = partial(_in_threads, failed_keys, 4)
    out["2,000 idle connections"] = partial(_sockets, server, 2000, 12.0, trickle=False)
    out["200 slowloris connections"] = partial(_sockets, server, 200, 12.0, trickle=True)
    for name, (path, who, query) in gets.items():
        out[name] = partial(_loop, partial(_get, server, path, who, **query), seconds)
    zones = partial(_loop, partial(_get, server, "/v1/zones", "hellobike", **world), seconds)
    out["/v1/zones world bbox, 4 clients"] = partial(_in_threads, zones, 4)
    return out


def seed_rejects(server: Server, n: int) -> float:
    """``n`` rejected checks (trip ends far from every box: zones.workload's ``far``
    class), in batches of 10,000."""
    t0 = time.monotonic()
    te = make_trip_ends(DEFAULT_SEED_FILE, n, seed=19, mix={"far": 1.0}, fixes_per_trip=1)
    lon, lat = te.fix_lon[:, 0], te.fix_lat[:, 0]
    for start in range(0, n, 10_000):
        body = {
            "checks": [
                _check(float(lon[i]), float(lat[i]), f"T-seed-{i}")
                for i in range(start, min(n, start + 10_000))
            ]
        }
        status, _ = _post(server, "/v1/checks/batch", orjson.dumps(body), "qingju")
        assert status == 200, status
    return time.monotonic() - t0


def run(rate: float, rejects: int, seconds: float) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="geofence-hostile-"))
    server = Server(work).start()
    try:
        seeded_s = seed_rejects(server, rejects)
        te = make_trip_ends(DEFAULT_SEED_FILE, 2000, seed=7, fixes_per_trip=1)
        bodies = [
            orjson.dumps(_check(float(te.fix_lon[k, 0]), float(te.fix_lat[k, 0]), f"T-h-{k}"))
            for k in range(2000)
        ]
        rss = RSS(server.proc.pid)  # type: ignore[union-attr]
        honest = Honest(server, bodies, rate)
        time.sleep(4.0)  # the honest process starts (spawn: imports) and warms up
        t_quiet = time.monotonic()
        time.sleep(seconds)
        t_quiet_end = time.monotonic()
        quiet_rss = round(rss.now(), 1)
        rows: Any = []
        for name, probe in probes(server, seconds).items():
            base = rss.now()
            t0 = time.monotonic()
            answers = probe()
            t1 = time.monotonic()
            time.sleep(0.3)
            statuses: dict[str, int] = {}
            for code, _ in answers:
                statuses[str(code)] = statuses.get(str(code), 0) + 1
            row = {
                "probe": name,
                "requests": len(answers),
                "statuses": statuses,
                "largest_answer_bytes": max((b for _, b in answers), default=0),
                "largest_refusal_bytes": max((b for c, b in answers if c >= 400), default=0),
                "seconds": round(t1 - t0, 2),
                "rss_before_mb": round(base, 1),
                "rss_growth_mb": round(rss.peak(t0, t1 + 0.3) - base, 1),
            }
            rows.append((row, t0, t1))
            print(json.dumps(row, ensure_ascii=False), flush=True)
            time.sleep(1.0)
        honest.stop()
        rss.stop()
        rows = [row | honest.window(t0, t1) for row, t0, t1 in rows]
        quiet = honest.window(t_quiet, t_quiet_end) | {"rss_mb": quiet_rss}
        log = server.stderr()
    finally:
        server.stop()
    ok = {
        "refusals_le_1mb": all(r["largest_refusal_bytes"] <= TARGET_ANSWER for r in rows),
        "rss_growth_le_100mb": all(r["rss_growth_mb"] <= TARGET_RSS_MB for r in rows),
        "p99_le_50ms": all(r["p99_ms"] <= TARGET_P99_MS for r in rows),
        "no_honest_failures": all(r["honest_failed"] == 0 for r in rows),
    }
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "setup": {
            "honest_rate_per_s": rate,
            "seconds_per_probe": seconds,
            "seeded_rejects": rejects,
            "seed_seconds": round(seeded_s, 1),
            "zones": 18_300,
        },
        "quiet": quiet,
        "probes": rows,
        "targets": {
            "answer_bytes": TARGET_ANSWER,
            "rss_growth_mb": TARGET_RSS_MB,
            "p99_ms": TARGET_P99_MS,
        },
        "met": ok,
        "server_log_lines": len(log.splitlines()),
        "server_log_tracebacks": log.count("Traceback"),
    }


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["probes"]
    names = [r["probe"] for r in rows]
    y = np.arange(len(rows))
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 0.42 * len(rows) + 1.6), dpi=110, sharey=True)
    a.barh(y, [r["rss_growth_mb"] for r in rows], color="#4c72b0")
    a.axvline(TARGET_RSS_MB, color="#c44e52", ls="--", label="target 100 MB")
    a.set_xlabel("server RSS growth during the probe (MB)")
    a.set_yticks(y, names, fontsize=8)
    a.invert_yaxis()
    a.legend(fontsize=8)
    b.barh(y, [r["p99_ms"] for r in rows], color="#55a868")
    b.axvline(TARGET_P99_MS, color="#c44e52", ls="--", label="target 50 ms")
    b.axvline(result["quiet"]["p99_ms"], color="#888", ls=":", label="no probe")
    b.set_xlabel(f"honest single-check p99 (ms), {result['setup']['honest_rate_per_s']:g}/s")
    b.legend(fontsize=8)
    fig.suptitle("geofence serve under the hostile probes of issue 19", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--rejects", type=int, default=50_000)
    ap.add_argument("--seconds", type=float, default=4.0)
    args = ap.parse_args()
    result = run(args.rate, args.rejects, args.seconds)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "hostile.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    plot(result, RESULTS / "hostile.png")
    print(json.dumps(result["met"]))


if __name__ == "__main__":
    main()
