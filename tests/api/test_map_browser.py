"""The city map in a real browser: ``geofence serve`` and headless Chromium.

The server starts the README's way (a ``geofence serve`` process on a free loopback
port, a fresh SQLite file, the bundled Zhuhai zone set); checks are posted through
the API, among them a tight cluster of rejected trip ends in Xiangzhou; two weeks of
earlier decisions are added to the audit log so that the rate charts have days to
draw. Debian's ``chromium`` (``/usr/bin/chromium``, installed by ``make test``
through ``.ci/install-chromium``) opens ``/map`` under Playwright; there is no
browser download and no skip: without Chromium the test fails.

Checked: no console errors and no request leaves the machine; the district outlines
and zone polygons are drawn in a Xiangzhou view; clicking a known box shows its id
and its last 7 days; a check posted through the API appears on the decisions layer
within 3 s; the hot spot of the seeded cluster is shown. Screenshots go to
``map.png`` (Xiangzhou) and ``map-overview.png`` in ``var/test-artifacts/`` (or in
``$GEOFENCE_SCREENSHOTS``; the committed ones in bench/results were made that way).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import shapely

from api.service import audit_row, new_id
from api.settings import DEFAULT_SEED_FILE
from api.storage import Store
from api.testing.servetest import Server, check_at
from geofence import crs as gcrs
from zones.districts import district_of

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# screenshots go to var/test-artifacts (untracked) unless GEOFENCE_SCREENSHOTS names a
# folder, e.g. bench/results when refreshing the committed pictures
RESULTS = Path(
    os.environ.get(
        "GEOFENCE_SCREENSHOTS",
        Path(__file__).resolve().parents[2] / "var" / "test-artifacts",
    )
)
GONGBEI = (113.5763, 22.2709)  # the busy south of Xiangzhou
OPERATORS = ("meituan", "hellobike", "qingju")
CLUSTER_N = 30


def _require_browser() -> Any:
    """Playwright's sync API; fails (never skips) without it or without Chromium."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} is missing: `make test` installs Debian's chromium with apt-get "
            "(bash .ci/install-chromium); the map's browser test cannot run without it"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - a dev dependency
        pytest.fail(f"playwright is not installed (pip install -e '.[dev]'): {exc}")
    return sync_playwright


# ---------------------------------------------------------------------------- seeding


def _cluster_spot(http: httpx.Client, h: dict[str, str]) -> tuple[float, float, dict[str, Any]]:
    """A place in Xiangzhou near Gongbei with no zone within 40 m but a fenced box
    within 120 m (the box the suggestion takes its orientation from): metres, box."""
    x0, y0 = (float(v[0]) for v in gcrs.project(*GONGBEI))
    for r in range(0, 3000, 60):
        for a in range(0, 360, 30):
            x, y = x0 + r * math.sin(math.radians(a)), y0 + r * math.cos(math.radians(a))
            lon, lat = (float(v[0]) for v in gcrs.unproject(x, y))
            if str(district_of(lon, lat)) != "XZ":
                continue
            q = {"lon": lon, "lat": lat, "k": 1, "max_distance_m": 120}
            near = http.get("/v1/zones/nearest", params=q, headers=h).json()["features"]
            if not near or near[0]["properties"]["distance_m"] < 40:
                continue
            if near[0]["properties"]["kind"] == "parking" and near[0]["properties"]["fenced"]:
                return x, y, near[0]
    raise AssertionError("no free spot for the cluster near Gongbei")


SETTLED = (
    "z => !geofenceMap.state.zonePending && geofenceMap.map.getZoom() === z"
    " && geofenceMap.state.zonesZoom === z"
    " && geofenceMap.state.zoneDone === geofenceMap.state.zoneReq"
)


def _go(page: Any, zoom: int, lat: float, lon: float) -> None:
    """Move the map (through the URL hash) and wait until the view's zones are drawn."""
    page.evaluate(f"location.hash = '#{zoom}/{lat:.7f}/{lon:.7f}'")
    page.wait_for_function(SETTLED, arg=zoom, timeout=10_000)


def _seed(server: Server, http: httpx.Client, zones: list[dict[str, Any]]) -> dict[str, Any]:
    """Checks through the API: settled and rejected trip ends of three operators around
    Gongbei, and CLUSTER_N rejected trip ends within a few metres of one spot."""
    rng = np.random.default_rng(20261126)
    admin = server.h("admin")
    cx, cy, known = _cluster_spot(http, admin)
    view = [
        f
        for f in zones
        if f["properties"]["kind"] == "parking"
        and f["id"] != known["id"]
        and abs(f["_c"][0] - GONGBEI[0]) < 0.03
        and abs(f["_c"][1] - GONGBEI[1]) < 0.02
    ]
    assert len(view) > 100
    for k, op in enumerate(OPERATORS):
        checks = []
        for i in range(160):
            f = view[int(rng.integers(len(view)))]
            p = shapely.point_on_surface(shapely.geometry.shape(f["geometry"]))
            if i % 4 == k:  # rejected: tens of metres off a box
                x, y = gcrs.project(p.x, p.y)
                d, a = rng.uniform(30, 120), rng.uniform(0, 2 * math.pi)
                lon, lat = gcrs.unproject(x + d * math.cos(a), y + d * math.sin(a))
                checks.append(check_at(float(lon[0]), float(lat[0]), f"{op}-{i}", accuracy_m=3.0))
            else:
                checks.append(check_at(p.x, p.y, f"{op}-{i}"))
        r = http.post("/v1/checks/batch", json={"checks": checks}, headers=server.h(op))
        assert r.status_code == 200, r.text
    lon, lat = gcrs.unproject(
        cx + rng.normal(0, 2.5, CLUSTER_N), cy + rng.normal(0, 2.5, CLUSTER_N)
    )
    cluster = [
        check_at(float(a), float(b), f"cluster-{i}")
        for i, (a, b) in enumerate(zip(lon, lat, strict=True))
    ]
    r = http.post("/v1/checks/batch", json={"checks": cluster}, headers=server.h("meituan"))
    assert r.status_code == 200
    assert {d["outcome"] for d in r.json()["results"]} == {"reject"}
    clon, clat = gcrs.unproject(cx, cy)
    return {"cluster": (float(clon[0]), float(clat[0])), "known": known, "view": view}


def _history(server: Server, http: httpx.Client, view: list[dict[str, Any]]) -> None:
    """13 earlier days of decisions in the audit log (for the charts): copies of a
    recorded settle and reject with their day, operator and position changed."""
    recent = http.get("/v1/checks/recent?limit=2000", headers=server.h("admin")).json()
    proto = {
        o: next(c for c in recent["checks"] if c["outcome"] == o) for o in ("settle", "reject")
    }
    rng = np.random.default_rng(7)
    store = Store.open(server.db_url, sqlite_synchronous="NORMAL")
    try:
        records = {o: store.get_check(c["check_id"]) for o, c in proto.items()}
        rows = []
        now = datetime.now(UTC)
        base = {"meituan": 0.78, "hellobike": 0.66, "qingju": 0.55}
        for day in range(1, 14):
            for op in OPERATORS:
                rate = base[op] + 0.012 * (13 - day) * (1 if op != "qingju" else -0.5)
                for _ in range(30):
                    outcome = "settle" if rng.random() < rate else "reject"
                    rec = records[outcome]
                    f = view[int(rng.integers(len(view)))]
                    off = 0.0 if outcome == "settle" else rng.uniform(0.0005, 0.003)
                    cid = new_id()
                    when = now - timedelta(days=day, minutes=float(rng.uniform(0, 600)))
                    decision = rec["decision"] | {
                        "check_id": cid,
                        "decided_at": when.isoformat().replace("+00:00", "Z"),
                        "position": {
                            "lon": f["_c"][0] + off,
                            "lat": f["_c"][1] - off,
                            "accuracy_m": 1.0,
                        },
                    }
                    body = rec["request"] | {"trip_id": cid}
                    row = audit_row(
                        check_id=cid,
                        operator=op,
                        body=body,
                        body_json=orjson.dumps(body).decode(),
                        decision=decision,
                        idempotency_key=None,
                        district=None,
                    )
                    # a rate per district too: the history is spread over the three
                    row["district"] = ["香洲区", "金湾区", "斗门区"][int(rng.integers(3))]
                    rows.append(row)
        with store.engine.begin() as conn:
            store.insert_checks(conn, rows)
    finally:
        store.close()


# ---------------------------------------------------------------------------- the test
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("map-e2e")).start(timeout=300.0)
    yield srv
    srv.stop()


def test_the_city_map_in_chromium(server: Server) -> None:
    sync_playwright = _require_browser()
    timings: dict[str, float] = {"server_ready_s": server.started_s}
    zones = orjson.loads(DEFAULT_SEED_FILE.read_bytes())["features"]
    for f in zones:
        c = shapely.geometry.shape(f["geometry"]).centroid
        f["_c"] = (c.x, c.y)
    with httpx.Client(base_url=server.url, timeout=60.0) as http:
        t0 = time.monotonic()
        seeded = _seed(server, http, zones)
        _history(server, http, seeded["view"])
        timings["seed_s"] = time.monotonic() - t0
        clon, clat = seeded["cluster"]
        known = seeded["known"]
        kc = shapely.geometry.shape(known["geometry"]).centroid

        console: list[tuple[str, str]] = []
        foreign: list[str] = []
        failed: list[str] = []
        user_data = tempfile.mkdtemp(prefix="map_chromium_")
        try:
            with sync_playwright() as pw:
                ctx = pw.chromium.launch_persistent_context(
                    user_data,
                    executable_path=CHROMIUM,
                    headless=True,
                    args=CHROMIUM_ARGS,
                    viewport={"width": 1400, "height": 900},
                )
                try:
                    page = ctx.new_page()
                    page.on(
                        "console",
                        lambda m: console.append((m.type, m.text)) if m.type == "error" else None,
                    )
                    page.on("pageerror", lambda e: console.append(("pageerror", str(e))))
                    page.on(
                        "request",
                        lambda r: (
                            None
                            if r.url.startswith((server.url, "data:"))
                            else foreign.append(r.url)
                        ),
                    )
                    page.on("requestfailed", lambda r: failed.append(r.url))

                    # a Xiangzhou view around the cluster; the page asks for a key once
                    t1 = time.monotonic()
                    page.goto(f"{server.url}/map#17/{clat:.6f}/{clon:.6f}")
                    page.wait_for_selector("#key-dialog:not([hidden])", timeout=10_000)
                    page.fill("#key-input", server.keys["admin"])
                    page.click("#key-form button[type=submit]")
                    page.wait_for_selector("#key-dialog[hidden]", state="attached", timeout=10_000)
                    assert (
                        page.evaluate("localStorage.getItem('geofence.adminKey')")
                        == (server.keys["admin"])
                    )

                    # district outlines and zone polygons drawn in the view
                    page.wait_for_selector('path.district[data-district="XZ"]', timeout=10_000)
                    page.wait_for_function(SETTLED, arg=17, timeout=15_000)
                    assert page.locator("path[data-zone-id]").count() > 0
                    timings["first_draw_s"] = time.monotonic() - t1
                    drawn = page.evaluate(
                        """() => {
                          const box = document.getElementById('map').getBoundingClientRect();
                          const inView = (e) => { const r = e.getBoundingClientRect();
                            return r.width > 0 && r.right > box.left && r.left < box.right
                              && r.bottom > box.top && r.top < box.bottom; };
                          const zones = [...document.querySelectorAll('path[data-zone-id]')];
                          const xz = document.querySelector('path[data-district="XZ"]');
                          return {zones: zones.filter(inView).length,
                                  fenced: zones.filter(e => e.classList.contains('zone-fenced')
                                                            && inView(e)).length,
                                  district: inView(xz), d: xz.getAttribute('d').length};
                        }"""
                    )
                    assert drawn["district"] and drawn["d"] > 0, drawn  # clipped to the view
                    assert drawn["zones"] >= 5 and drawn["fenced"] >= 1, drawn

                    # the hot spot of the seeded cluster, on the map and in the list
                    item = page.wait_for_selector(
                        '#hotspot-list li[data-hotspot-id="ZH-SUG-0001"]', timeout=15_000
                    )
                    assert f"{CLUSTER_N} rejects" in item.inner_text()
                    assert page.locator('path[data-hotspot-id="ZH-SUG-0001"]').count() >= 2
                    centroid = page.evaluate(
                        "geofenceMap.state.hotspots[0].properties.suggestion.centroid"
                    )
                    hx, hy = gcrs.project(*centroid)
                    sx, sy = gcrs.project(clon, clat)
                    assert math.hypot(hx[0] - sx[0], hy[0] - sy[0]) < 2.0

                    # a check posted now appears on the decisions layer within 3 s
                    page.wait_for_function("geofenceMap.state.polls > 0", timeout=10_000)
                    lon, lat = gcrs.unproject(sx[0] + 12.0, sy[0] - 20.0)
                    live = http.post(
                        "/v1/checks",
                        json=check_at(float(lon[0]), float(lat[0]), "live-1"),
                        headers=server.h("hellobike"),
                    )
                    assert live.status_code == 200, live.text
                    posted = time.monotonic()
                    cid = live.json()["check_id"]
                    page.wait_for_selector(f'path[data-check-id="{cid}"]', timeout=3_000)
                    timings["live_s"] = time.monotonic() - posted
                    assert timings["live_s"] < 3.0
                    assert page.locator(f'#feed li[data-check-id="{cid}"]').count() == 1

                    # click a known box (no check stands on it): its id and last 7 days
                    _go(page, 19, kc.y, kc.x)
                    target = page.wait_for_selector(
                        f'path[data-zone-id="{known["id"]}"]', timeout=10_000
                    )
                    target.click()
                    popup = page.wait_for_selector(
                        f'.leaflet-popup-content .zone-popup[data-zone-id="{known["id"]}"]',
                        timeout=5_000,
                    )
                    page.wait_for_function(
                        "document.querySelector('.leaflet-popup-content')"
                        ".innerText.includes('in-box rate (7 d)')",
                        timeout=5_000,
                    )
                    text = popup.inner_text()
                    assert known["id"] in text and "香洲区" in text and "fenced" in text
                    assert known["id"] in page.inner_text("#zone-body")
                    page.keyboard.press("Escape")

                    # the charts have lines for the three operators and the districts
                    page.wait_for_function(
                        "document.querySelectorAll('#chart-operator path').length >= 3",
                        timeout=10_000,
                    )
                    legend = page.inner_text("#chart-operator .chart-legend")
                    assert all(op in legend for op in OPERATORS)
                    assert "香洲区" in page.inner_text("#chart-district .chart-legend")

                    # screenshots: the hot spot in its Xiangzhou street (its popup open),
                    # then the city with the panel's charts
                    RESULTS.mkdir(parents=True, exist_ok=True)
                    page.click('#hotspot-list li[data-hotspot-id="ZH-SUG-0001"]')
                    _go(page, 19, clat + 0.0003, clon + 0.0002)
                    page.wait_for_timeout(500)
                    page.screenshot(path=str(RESULTS / "map.png"))
                    page.evaluate("geofenceMap.map.closePopup()")
                    _go(page, 12, GONGBEI[1] + 0.03, GONGBEI[0] - 0.03)
                    page.evaluate("document.getElementById('charts').scrollIntoView()")
                    page.wait_for_timeout(500)
                    page.screenshot(path=str(RESULTS / "map-overview.png"))
                    page.wait_for_timeout(1200)  # one more poll round: still no errors
                finally:
                    ctx.close()
        finally:
            shutil.rmtree(user_data, ignore_errors=True)
    print(f"map e2e timings: {timings}")
    assert not console, console
    assert not foreign, foreign
    assert not failed, failed
