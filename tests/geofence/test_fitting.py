"""The error-model fit: the likelihood against slow oracles, recovery of known parameters.

Synthetic trails are drawn with numpy from the model of :mod:`geofence.fitting`
(truth + shared bias + mixture noise); the likelihood is checked against a dense grid
integral and against Monte Carlo, and the fit must recover the parameters it was
drawn with within 10 %.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from scipy import special

import geofence
from geofence import crs
from geofence.calibration import CalibrationRow
from geofence.fitting import (
    OUTLIER_SIGMA_M,
    SIGMA_PER_R68,
    Label,
    Trails,
    _log_box_axis,
    _log_mix,
    fit_calibration,
    fit_class,
    log_likelihood,
    trails_from_labels,
)


def simulate(rng, n, f, a0, b, eps, *, half=None, acc=(0.5, 8.0), nfix=(1, 8)) -> Trails:
    """``n`` trails from the model; ``half``: box half-sides (truth uniform in the box)."""
    m = nfix[1]
    k = rng.integers(nfix[0], nfix[1] + 1, n)
    mask = np.arange(m)[None, :] < k[:, None]
    reported = rng.uniform(*acc, (n, m))
    s = np.maximum(f * reported, a0) / SIGMA_PER_R68
    sig = np.where(rng.random((n, m)) < eps, OUTLIER_SIGMA_M, s)
    h = np.zeros((n, 2)) if half is None else np.tile(np.asarray(half, float), (n, 1))
    truth = rng.uniform(-h, h)
    bias = rng.normal(0.0, b, (n, 2))
    dx = truth[:, :1] + bias[:, :1] + rng.normal(size=(n, m)) * sig
    dy = truth[:, 1:] + bias[:, 1:] + rng.normal(size=(n, m)) * sig
    return Trails(np.where(mask, dx, 0.0), np.where(mask, dy, 0.0), reported, mask, h)


def dense_loglik(t: Trails, i: int, f, a0, b, eps, reach: float, n: int = 1201) -> float:
    """The slow path: the integral over c = truth + bias on a dense uniform grid."""
    m = t.mask[i]
    s = np.maximum(f * t.acc[i][m], a0) / SIGMA_PER_R68
    u = np.linspace(-reach, reach, n)
    h = u[1] - u[0]
    uu, vv = np.meshgrid(u, u, indexing="ij")
    total = _log_box_axis(uu, np.full_like(uu, t.half[i, 0]), b)
    total = total + _log_box_axis(vv, np.full_like(vv, t.half[i, 1]), b)
    for x, y, sj in zip(t.dx[i][m], t.dy[i][m], s, strict=True):
        total = total + _log_mix((x - uu) ** 2 + (y - vv) ** 2, np.full_like(uu, sj * sj), eps)
    return float(special.logsumexp(total) + 2 * math.log(h))


@pytest.mark.parametrize(
    ("params", "half", "tol"),
    [
        ((1.8, 3.0, 2.5, 0.05), None, 1e-4),
        ((1.5, 0.1, 0.15, 0.01), None, 1e-4),
        ((1.8, 3.0, 2.5, 0.05), (1.0, 2.5), 1e-4),
        ((1.8, 3.0, 0.5, 0.05), (1.0, 2.5), 1e-4),
        ((1.5, 0.1, 0.15, 0.01), (1.0, 2.5), 2e-3),
        ((1.8, 3.0, 0.05, 0.05), (1.0, 2.5), 5e-2),  # sharp box edges: the worst case
    ],
)
def test_likelihood_matches_a_dense_grid(params, half, tol):
    rng = np.random.default_rng(7)
    t = simulate(rng, 4, *params, half=half, nfix=(1, 5))
    fast = log_likelihood(t, *params)
    reach = 30.0 if params[2] > 1 else 6.0
    slow = [dense_loglik(t, i, *params, reach) for i in range(len(t))]
    assert np.abs(fast - slow).max() < tol


def test_box_likelihood_against_monte_carlo():
    """A box label's likelihood is E over a uniform truth in the box and the bias."""
    rng = np.random.default_rng(3)
    f, a0, b, eps = 2.0, 2.0, 1.2, 0.05
    half = (1.0, 2.5)
    t = simulate(rng, 4, f, a0, b, eps, half=half, nfix=(3, 5))
    fast = log_likelihood(t, f, a0, b, eps)
    draws = 400_000
    for i in range(len(t)):
        m = t.mask[i]
        s2 = (np.maximum(f * t.acc[i][m], a0) / SIGMA_PER_R68) ** 2
        c = rng.uniform(-np.array(half), np.array(half), (draws, 2))
        c += rng.normal(0.0, b, (draws, 2))
        d2 = (t.dx[i][m] - c[:, :1]) ** 2 + (t.dy[i][m] - c[:, 1:]) ** 2
        logp = _log_mix(d2, np.broadcast_to(s2, d2.shape), eps).sum(axis=1)
        mc = special.logsumexp(logp) - math.log(draws)
        w = np.exp(logp - logp.max())
        rel_se = w.std() / w.mean() / math.sqrt(draws)  # the estimate's relative error
        assert abs(fast[i] - mc) < 4 * rel_se + 1e-3, (i, fast[i], mc, rel_se)


@pytest.mark.parametrize(
    ("params", "half", "acc"),
    [
        ((1.8, 3.0, 2.5, 0.05), None, (0.5, 8.0)),  # phones: optimistic, urban multipath
        ((1.3, 0.4, 0.3, 0.02), None, (0.1, 2.0)),  # a high-precision module
        ((2.0, 2.0, 1.5, 0.08), (1.0, 2.5), (0.5, 8.0)),  # box labels (position unknown)
    ],
)
def test_fit_recovers_known_parameters(params, half, acc):
    rng = np.random.default_rng(11)
    t = simulate(rng, 2000, *params, half=half, acc=acc)
    start = CalibrationRow(quality="single")  # the defaults, not the truth
    t0 = time.perf_counter()
    fit = fit_class(t, start)
    took = time.perf_counter() - t0
    got = (fit.accuracy_factor, fit.accuracy_floor_m, fit.bias_m, fit.outlier_share)
    for name, want, have in zip(("factor", "floor", "bias", "outliers"), params, got, strict=True):
        assert abs(have - want) <= 0.1 * want, (name, want, have, took)
    assert fit.loglik >= fit.start_loglik
    assert fit.converged


def test_the_fit_row_is_clipped_rounded_and_narrow_by_trips():
    rng = np.random.default_rng(5)
    t = simulate(rng, 200, 1.8, 3.0, 2.5, 0.05)
    fit = fit_class(t, CalibrationRow())
    row = fit.row(("op", "*", "single"))
    assert row.key == ("op", "*", "single") and row.trips == 200 and row.settles_narrow
    assert not fit.row(("op", "*", "single"), narrow_trips=201).settles_narrow
    # a row the policy accepts
    assert CalibrationRow.from_mapping(row.to_mapping()) == row


# ---------------------------------------------------------------------------- labels
LON, LAT = 113.5500, 22.2500  # a box in Xiangzhou, 4 x 2 m


def _box_fc() -> dict:
    x0, y0 = crs.project(LON, LAT)
    corners = [(x0, y0), (x0 + 4, y0), (x0 + 4, y0 + 2), (x0, y0 + 2), (x0, y0)]
    lon, lat = crs.unproject(np.array([c[0] for c in corners]), np.array([c[1] for c in corners]))
    lon, lat = np.ravel(lon), np.ravel(lat)
    ring = [[float(a), float(b)] for a, b in zip(lon, lat, strict=True)]
    ring[-1] = ring[0]
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": "BOX-1",
                "properties": {"kind": "parking", "fenced": True, "beacons": ["S-1"]},
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            }
        ],
    }


@pytest.fixture(scope="module")
def box_index() -> geofence.ZoneIndex:
    return geofence.ZoneIndex(geofence.ZoneSet.from_geojson(_box_fc()))


def _ll(x: float, y: float) -> tuple[float, float]:
    lon, lat = crs.unproject(np.array([x]), np.array([y]))
    return float(np.ravel(lon)[0]), float(np.ravel(lat)[0])


def _check(fixes, *, operator="op", device_class=None, ended_at=1.8e9) -> geofence.Check:
    return geofence.Check(
        fixes=tuple(fixes), ended_at=ended_at, operator=operator, device_class=device_class
    )


def test_trails_from_labels_dedups_converts_and_drops_stale(box_index):
    policy = geofence.Policy()
    x0, y0 = crs.project(LON, LAT)
    lon1, lat1 = _ll(x0 + 3.0, y0 - 4.0)
    glon, glat = (float(np.ravel(v)[0]) for v in crs.from_wgs84(lon1, lat1, "gcj02"))
    fixes = [
        geofence.Fix(float(lon1), float(lat1), 2.0, at=1.8e9 - 5, quality="single"),
        geofence.Fix(float(lon1), float(lat1), 9.0, at=1.8e9 - 4),  # a repeat: counted once
        geofence.Fix(float(glon), float(glat), None, crs="gcj02"),  # the same place, GCJ-02
        geofence.Fix(float(lon1), float(lat1) + 1e-4, 1.0, at=1.8e9 - 500),  # stale
    ]
    point = Label(_check(fixes), lon=LON, lat=LAT)
    box = Label(_check(fixes), zone_id="BOX-1")
    t, used = trails_from_labels([point, box], policy, box_index)
    assert used.tolist() == [0, 1]
    assert t.mask.sum(axis=1).tolist() == [2, 2]
    np.testing.assert_allclose(t.dx[0, :2], [3.0, 3.0], atol=0.02)
    np.testing.assert_allclose(t.dy[0, :2], [-4.0, -4.0], atol=0.02)
    np.testing.assert_allclose(t.acc[0, :2], [2.0, policy.default_accuracy_m])
    np.testing.assert_allclose(sorted(t.half[1]), [1.0, 2.0], atol=1e-6)
    # in the box's frame the fix is (3 - 2, -4 - 1) from its centre, up to the axes' order
    np.testing.assert_allclose(sorted(np.abs([t.dx[1, 0], t.dy[1, 0]])), [1.0, 5.0], atol=0.02)


def _labels_around_box(rng, n, *, f, a0, b, eps, device_class=None, zone=False):
    x0, y0 = crs.project(LON, LAT)
    out = []
    for _ in range(n):
        tx, ty = x0 + rng.uniform(0, 4), y0 + rng.uniform(0, 2)
        k = int(rng.integers(2, 6))
        acc = rng.uniform(0.5, 8.0, k)
        s = np.maximum(f * acc, a0) / SIGMA_PER_R68
        sig = np.where(rng.random(k) < eps, OUTLIER_SIGMA_M, s)
        bx, by = rng.normal(0, b, 2)
        xs = tx + bx + rng.normal(size=k) * sig
        ys = ty + by + rng.normal(size=k) * sig
        lon, lat = (np.ravel(v) for v in crs.unproject(xs, ys))
        fixes = [
            geofence.Fix(float(a), float(c), float(r), at=1.8e9 - 1, quality="single")
            for a, c, r in zip(lon, lat, acc, strict=True)
        ]
        check = _check(fixes, device_class=device_class)
        if zone:
            out.append(Label(check, zone_id="BOX-1"))
        else:
            tlon, tlat = _ll(tx, ty)
            out.append(Label(check, lon=float(tlon), lat=float(tlat)))
    return out


def test_fit_calibration_fits_big_classes_keeps_small_ones(box_index):
    rng = np.random.default_rng(2)
    big = _labels_around_box(rng, 240, f=1.8, a0=3.0, b=2.5, eps=0.05, device_class="lock-v3")
    box = _labels_around_box(rng, 60, f=1.8, a0=3.0, b=2.5, eps=0.05, zone=True)
    small = _labels_around_box(rng, 10, f=1.8, a0=3.0, b=2.5, eps=0.05, device_class="rare")
    base = geofence.Policy()
    fit = fit_calibration(box_index, big + box + small, base)
    by = {c.key: c for c in fit.classes}
    assert set(by) == {("op", "lock-v3", "single"), ("op", "*", "single"), ("op", "rare", "single")}
    lock, star, rare = (
        by["op", "lock-v3", "single"],
        by["op", "*", "single"],
        by["op", "rare", "single"],
    )
    assert lock.fitted and lock.trips == 240 and lock.row.settles_narrow
    assert star.fitted and star.trips == 60 and not star.row.settles_narrow
    assert not rare.fitted and rare.row == base.calibration.row("op", "rare", "single")
    assert "base row kept" in rare.note
    assert abs(lock.row.accuracy_factor - 1.8) < 0.5 and abs(lock.row.bias_m - 2.5) < 1.0
    # the policy holds the fitted rows and matches them most specifically
    assert fit.policy.calibration.row("op", "lock-v3", "single") == lock.row
    assert fit.policy.calibration.row("other", None, "single") == base.calibration.row(
        "other", None, "single"
    )
    assert geofence.Policy.from_mapping(fit.policy.to_mapping()) == fit.policy
    for c in fit.classes:
        assert 0.0 <= c.coverage_before <= 1.0 and 0.0 <= c.coverage_after <= 1.0
        assert len(c.z_before) == c.trips or not c.fitted


def test_coverage_counts_the_truth_inside_the_fused_radius(box_index):
    """Coverage against a direct computation from the decisions' positions."""
    rng = np.random.default_rng(4)
    labels = _labels_around_box(rng, 60, f=1.8, a0=3.0, b=2.5, eps=0.05)
    fit = fit_calibration(box_index, labels, geofence.Policy())
    decided = geofence.decide_many(box_index, [lab.check for lab in labels], geofence.Policy(), 0)
    inside = []
    for lab, d in zip(labels, decided, strict=True):
        p = d.position
        x, y = crs.project(np.array([p["lon"], lab.lon]), np.array([p["lat"], lab.lat]))
        inside.append(math.hypot(x[0] - x[1], y[0] - y[1]) <= p["accuracy_m"])
    assert fit.classes[0].coverage_before == pytest.approx(np.mean(inside))


def test_a_label_has_one_truth():
    c = _check([geofence.Fix(LON, LAT, 1.0)])
    with pytest.raises(ValueError):
        Label(c)
    with pytest.raises(ValueError):
        Label(c, lon=LON, lat=LAT, zone_id="BOX-1")
    with pytest.raises(ValueError):
        Label(_check([geofence.Fix(LON, LAT, 1.0)], operator=None), lon=LON, lat=LAT)
