"""zones.validate and ``geofence zones validate``: the corpus, the CLI, random corruption."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import orjson
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from api.cli import app
from geofence.index import ZoneIndex
from geofence.zoneset import ZoneSet
from zones.validate import HINTS, SIZE_RULES, Report, fix_winding, validate

CORPUS = Path(__file__).resolve().parent / "corpus"
EXPECTED: dict[str, str] = json.loads((CORPUS / "EXPECTED.json").read_text(encoding="utf-8"))
BUNDLED = Path(__file__).resolve().parents[2] / "zones" / "data" / "zhuhai.geojson"
FILE_LEVEL = {"not-json", "not-feature-collection", "unsupported-crs", "no-features"}
WARNINGS = {
    "missing-property",
    "clockwise-exterior",
    "counter-clockwise-hole",
    "partly-outside-service-area",
    "looks-like-gcj02",
    "looks-like-bd09",
    "implausible-box-size",
}

runner = CliRunner()


def cli(*args: str) -> Any:
    return runner.invoke(app, ["zones", "validate", *map(str, args)])


def reference_for(stem: str) -> Path | None:
    ref = CORPUS / f"{stem}.reference.geojson"
    return ref if ref.exists() else None


def valid_fc() -> dict[str, Any]:
    return json.loads((CORPUS / "valid.geojson").read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------- corpus
def test_corpus_covers_every_rule() -> None:
    # the size rules are tested with small limits in test_validate_sizes.py: their
    # defaults would take corpus files of 60,000 zones or 2,000,000 vertices
    assert set(EXPECTED.values()) == set(HINTS) - SIZE_RULES, (
        "one corpus file per rule, and no more rules"
    )
    stems = {p.name.removesuffix(".geojson") for p in CORPUS.glob("*.geojson")}
    stems = {s for s in stems if not s.endswith(".reference")} - {"valid"}
    assert stems == set(EXPECTED)


@pytest.mark.parametrize("stem", sorted(EXPECTED))
def test_corpus_file_breaks_exactly_its_rule(stem: str) -> None:
    rule = EXPECTED[stem]
    report = validate(CORPUS / f"{stem}.geojson", reference=reference_for(stem))
    assert report.rules() == {rule}, [(i.rule, i.message) for i in report.issues]
    severity = "warning" if rule in WARNINGS else "error"
    for issue in report.issues:
        assert issue.severity == severity
        assert issue.hint and issue.message
        if rule in FILE_LEVEL:
            assert issue.feature is None
        else:  # the broken feature is the third one, whatever its id
            assert issue.feature in ("ZH-XZ-900003", "#2", "900003", "ZH-XZ-900001")
            assert issue.index == 2
    assert report.ok is (severity == "warning")


@pytest.mark.parametrize("stem", sorted(EXPECTED))
def test_corpus_file_through_the_cli(stem: str) -> None:
    rule = EXPECTED[stem]
    args: list[Any] = [CORPUS / f"{stem}.geojson", "--json"]
    if (ref := reference_for(stem)) is not None:
        args += ["--reference", ref]
    result = cli(*args)
    assert result.exit_code == (0 if rule in WARNINGS else 1), result.output
    doc = json.loads(result.stdout)
    assert {i["rule"] for i in doc["issues"]} == {rule}
    assert doc["ok"] is (rule in WARNINGS)
    # and as a table: the rule and the feature are named
    table = cli(*args[:1], *args[2:])
    assert table.exit_code == result.exit_code
    assert rule in table.stdout
    assert ("FAILED" if rule not in WARNINGS else "OK") in table.stdout


@pytest.mark.parametrize("stem", sorted(s for s, r in EXPECTED.items() if r in WARNINGS))
def test_warning_only_files_are_accepted_by_the_engine(stem: str) -> None:
    zs = ZoneSet.from_geojson(CORPUS / f"{stem}.geojson")
    assert len(zs) == 3


def test_valid_file_passes() -> None:
    report = validate(CORPUS / "valid.geojson")
    assert report.ok and report.issues == []
    assert report.n_features == 7
    zs = ZoneSet.from_geojson(CORPUS / "valid.geojson")
    assert len(zs) == 7
    result = cli(CORPUS / "valid.geojson")
    assert result.exit_code == 0, result.output
    assert "OK: 7 features, 0 errors, 0 warnings" in result.stdout


def test_touching_boxes_are_not_overlapping() -> None:
    # valid.geojson holds ZH-XZ-900010/900011, sharing an edge with identical coordinates
    fc = valid_fc()
    feats = {f["id"]: f for f in fc["features"]}
    a = shapely.from_geojson(json.dumps(feats["ZH-XZ-900010"]["geometry"]))
    b = shapely.from_geojson(json.dumps(feats["ZH-XZ-900011"]["geometry"]))
    assert a.touches(b)
    assert validate(fc).ok


def test_sliver_overlap_below_threshold_is_touching() -> None:
    fc = valid_fc()
    feats = {f["id"]: f for f in fc["features"]}
    ring = feats["ZH-XZ-900011"]["geometry"]["coordinates"][0]
    # push the shared edge 1 mm (~1e-8 deg) into the neighbour: 2.5 m x 1 mm = 0.0025 m²
    for k in (0, 3, 4):
        ring[k][0] = round(ring[k][0] - 1e-8, 9)
    assert validate(fc).ok
    for k in (0, 3, 4):  # 10 cm: 0.25 m², an overlap
        ring[k][0] = round(ring[k][0] - 1e-6, 9)
    assert validate(fc).rules() == {"overlapping-boxes"}


# ---------------------------------------------------------------------------- API details
def test_source_forms() -> None:
    path = CORPUS / "valid.geojson"
    data = path.read_bytes()
    for src in (path, str(path), data, data.decode(), valid_fc()):
        report = validate(src)
        assert report.ok and report.n_features == 7, type(src)
    assert validate(path).source == str(path)


def test_report_json_and_counts() -> None:
    report = validate(CORPUS / "duplicate-id.geojson")
    assert isinstance(report, Report)
    assert len(report.errors) == 1 and report.warnings == [] and not report.ok
    doc = json.loads(report.to_json())
    assert doc["n_errors"] == 1 and doc["n_features"] == 3
    assert doc["issues"][0] == {
        "severity": "error",
        "feature": "ZH-XZ-900001",
        "rule": "duplicate-id",
        "message": "id 'ZH-XZ-900001' is also used by feature #0 (this is #2)",
        "hint": HINTS["duplicate-id"],
        "index": 2,
    }


def test_each_bad_property_is_named() -> None:
    fc = valid_fc()
    p = fc["features"][0]["properties"]
    p.update(
        fenced="yes",
        capacity=-1,
        operators="meituan",
        heading_deg=360,
        active_to="tomorrow",
        name=7,
        beacons=[1],
    )
    report = validate(fc)
    assert report.rules() == {"bad-property-type"}
    named = {i.message.split("'")[1] for i in report.issues}
    assert named == {
        "fenced",
        "capacity",
        "operators",
        "heading_deg",
        "active_to",
        "name",
        "beacons",
    }
    cap = next(i for i in report.issues if "'capacity'" in i.message)
    assert "an integer >= 0" in cap.message and "-1" in cap.message


def test_swap_detected_by_service_area_when_latitudes_are_plausible() -> None:
    # a city at lon 60, lat 25: swapped it reads lon 25, lat 60, both "in range"
    area = shapely.box(59.9, 24.9, 60.1, 25.1)
    ring = [[25.0, 60.0], [25.00002, 60.0], [25.00002, 60.0001], [25.0, 60.0001], [25.0, 60.0]]
    fc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": "A",
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {"kind": "no_parking"},
            }
        ],
    }
    assert validate(fc, service_area=area).rules() == {"lonlat-swapped"}
    far = shapely.box(0, 0, 1, 1)
    assert validate(fc, service_area=far).rules() == {"outside-service-area"}


def test_json_nan_and_huge_numbers() -> None:
    text = (CORPUS / "valid.geojson").read_text(encoding="utf-8")
    fc = json.loads(text)
    ring = fc["features"][0]["geometry"]["coordinates"][0]
    for bad, rule in (
        ("NaN", "non-finite-coordinate"),
        ("-Infinity", "non-finite-coordinate"),
        ("1e999", "non-finite-coordinate"),  # parses to inf
        ("1e300", "lonlat-out-of-range"),
    ):
        s = text.replace(json.dumps(ring[1][0]), bad, 1)
        assert s != text
        assert validate(s.encode()).rules() == {rule}, bad
    big = copy.deepcopy(fc)
    big["features"][0]["geometry"]["coordinates"][0][1][0] = 10**400  # Python int, no float
    assert validate(big).rules() == {"non-finite-coordinate"}


@pytest.mark.parametrize(
    "data",
    [b"", b"\xff\xfe\x00garbage", b"[" * 100_000, b"null", b"[]", b'"FeatureCollection"'],
)
def test_never_raises_on_junk(data: bytes) -> None:
    report = validate(data)
    assert not report.ok
    assert report.rules() <= {"not-json", "not-feature-collection"}


def test_reference_must_be_a_feature_collection() -> None:
    with pytest.raises(ValueError, match="reference"):
        validate(CORPUS / "valid.geojson", reference={"type": "Feature"})


# ---------------------------------------------------------------------------- datum
def test_gcj02_warning_needs_a_reference() -> None:
    path = CORPUS / "looks-like-gcj02.geojson"
    assert validate(path).issues == []  # 600 m off is still a plausible place for a box
    report = validate(path, reference=CORPUS / "looks-like-gcj02.reference.geojson")
    (issue,) = report.issues
    assert (issue.severity, issue.feature, issue.rule) == (
        "warning",
        "ZH-XZ-900003",
        "looks-like-gcj02",
    )
    assert "WGS-84" in issue.hint and "gcj02_to_wgs84" in issue.hint
    assert 500 < float(issue.message.split(" m from")[0].split()[-1]) < 700
    assert report.ok


def test_gcj02_reference_through_cli() -> None:
    result = cli(
        CORPUS / "looks-like-gcj02.geojson",
        "--reference",
        CORPUS / "looks-like-gcj02.reference.geojson",
    )
    assert result.exit_code == 0, result.output
    assert "looks-like-gcj02" in result.stdout and "1 warnings" in result.stdout


def test_a_real_move_is_not_a_datum_warning() -> None:
    ref = json.loads((CORPUS / "looks-like-gcj02.reference.geojson").read_text(encoding="utf-8"))
    moved = copy.deepcopy(ref)
    for pos in moved["features"][2]["geometry"]["coordinates"][0]:
        pos[0] = round(pos[0] + 0.004, 7)  # ~400 m east, no datum explains it
    assert validate(moved, reference=ref).issues == []


# ---------------------------------------------------------------------------- fixing
def test_fix_winding_rewinds_exteriors_and_holes() -> None:
    fc = valid_fc()
    original = copy.deepcopy(fc)
    for f in fc["features"]:
        g = f["geometry"]
        polys = [g["coordinates"]] if g["type"] == "Polygon" else g["coordinates"]
        for poly in polys:
            for ring in poly:
                ring.reverse()
    before = copy.deepcopy(fc)
    assert validate(fc).rules() == {"clockwise-exterior", "counter-clockwise-hole"}
    fixed = fix_winding(fc)
    assert fc == before  # the input is not modified
    assert fixed == original
    assert validate(fixed).issues == []


def test_cli_fix_writes_out(tmp_path: Path) -> None:
    out = tmp_path / "fixed.geojson"
    result = cli(CORPUS / "clockwise-exterior.geojson", "--fix", "--out", out)
    assert result.exit_code == 0, result.output
    assert "ZH-XZ-900003: rewound 1 exterior ring to counter-clockwise" in result.stdout
    assert validate(out).issues == []
    doc = orjson.loads(out.read_bytes())
    assert [f["id"] for f in doc["features"]] == ["ZH-XZ-900001", "ZH-XZ-900002", "ZH-XZ-900003"]
    result = cli(CORPUS / "clockwise-exterior.geojson", "--fix", "--out", out, "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["fixed"] == [
        "ZH-XZ-900003: rewound 1 exterior ring to counter-clockwise"
    ]


def test_cli_fix_keeps_reporting_other_errors(tmp_path: Path) -> None:
    fc = json.loads((CORPUS / "clockwise-exterior.geojson").read_text(encoding="utf-8"))
    fc["features"][0]["id"] = "ZH-XZ-900002"  # and a duplicate id
    src = tmp_path / "in.geojson"
    src.write_text(json.dumps(fc))
    out = tmp_path / "out.geojson"
    result = cli(src, "--fix", "--out", out, "--json")
    assert result.exit_code == 1
    assert {i["rule"] for i in json.loads(result.stdout)["issues"]} == {"duplicate-id"}
    assert out.exists()


# ---------------------------------------------------------------------------- usage
def test_usage_errors_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "nope.geojson"
    result = cli(missing)
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {missing}: no such file"
    assert cli(CORPUS / "valid.geojson", "--fix").exit_code == 2
    assert cli(CORPUS / "valid.geojson", "--out", tmp_path / "x").exit_code == 2
    assert cli(CORPUS / "valid.geojson", "--reference", missing).exit_code == 2
    result = cli(CORPUS / "valid.geojson", "--reference", CORPUS / "not-json.geojson")
    assert result.exit_code == 2 and "reference" in result.output
    assert cli().exit_code == 2


def test_table_limit() -> None:
    fc = valid_fc()
    for f in fc["features"]:
        f["properties"]["capacity"] = -5
    report = validate(fc)
    assert len(report.errors) == 7
    result = runner.invoke(
        app, ["zones", "validate", "--limit", "2", str(CORPUS / "valid.geojson")]
    )
    assert result.exit_code == 0


# ---------------------------------------------------------------------------- the bundled set
def test_bundled_zone_set_validates_clean() -> None:
    # How long it takes is the upload bench's business (bench.http), not a timed
    # assertion on a shared machine.
    report = validate(BUNDLED)
    assert report.errors == [], report.errors[:5]
    assert report.n_features >= 18_000


def test_bundled_overlap_is_caught() -> None:
    fc = orjson.loads(BUNDLED.read_bytes())
    boxes = [f for f in fc["features"] if f["properties"]["kind"] == "parking"]
    victim = copy.deepcopy(boxes[0])
    victim["id"] = victim["id"] + "-copy"
    fc["features"].append(victim)
    report = validate(fc)
    assert [(i.rule, i.feature) for i in report.issues] == [("overlapping-boxes", victim["id"])]


# ---------------------------------------------------------------------------- hypothesis
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


def _slots(node: Any, out: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key) in a JSON tree."""
    if isinstance(node, dict):
        for k, v in node.items():
            out.append((node, k))
            _slots(v, out)
    elif isinstance(node, list):
        for k, v in enumerate(node):
            out.append((node, k))
            _slots(v, out)
    return out


def _rings(fc: Any) -> list[list[Any]]:
    rings: list[list[Any]] = []
    features = fc.get("features") if isinstance(fc, dict) else None
    for f in features if isinstance(features, list) else []:
        g = f.get("geometry") if isinstance(f, dict) else None
        if not isinstance(g, dict) or not isinstance(g.get("coordinates"), list):
            continue
        polys = [g["coordinates"]] if g.get("type") == "Polygon" else g["coordinates"]
        for poly in polys:
            if isinstance(poly, list):
                rings += [r for r in poly if isinstance(r, list)]
    return rings


@st.composite
def corrupted(draw: st.DrawFn) -> dict[str, Any]:
    fc = valid_fc()
    for _ in range(draw(st.integers(1, 4))):
        op = draw(
            st.sampled_from(
                [
                    "drop",
                    "replace",
                    "number",
                    "swap",
                    "reverse",
                    "truncate",
                    "duplicate-id",
                    "duplicate-feature",
                    "shift",
                ]
            )
        )
        slots = _slots(fc, [])
        rings = _rings(fc)
        feats = fc.get("features") if isinstance(fc.get("features"), list) else []
        feats = [f for f in feats if isinstance(f, dict)]
        if op in ("drop", "replace") and slots:
            parent, key = draw(st.sampled_from(slots))
            if op == "drop":
                del parent[key]
            else:
                parent[key] = draw(JSON_VALUES)
        elif op == "number":
            nums = [(p, k) for p, k in slots if isinstance(p[k], float)]
            if nums:
                parent, key = draw(st.sampled_from(nums))
                parent[key] = draw(
                    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -parent[key], 0.0])
                    | st.floats(-200, 200)
                    | st.just(parent[key] + draw(st.floats(-1e-4, 1e-4)))
                )
        elif op == "swap" and rings:
            ring = draw(st.sampled_from(rings))
            for pos in ring:
                if isinstance(pos, list) and len(pos) >= 2:
                    pos[0], pos[1] = pos[1], pos[0]
        elif op == "reverse" and rings:
            draw(st.sampled_from(rings)).reverse()
        elif op == "truncate" and rings:
            ring = draw(st.sampled_from(rings))
            del ring[draw(st.integers(0, max(0, len(ring) - 1))) :]
        elif op == "duplicate-id" and len(feats) >= 2:
            a, b = draw(st.lists(st.sampled_from(feats), min_size=2, max_size=2))
            b["id"] = a.get("id")
        elif op == "duplicate-feature" and feats:
            f = copy.deepcopy(draw(st.sampled_from(feats)))
            if draw(st.booleans()):
                f["id"] = f"{f.get('id')}-dup"
            fc["features"].append(f)
        elif op == "shift" and rings:
            ring = draw(st.sampled_from(rings))
            dx, dy = draw(st.floats(-0.001, 0.001)), draw(st.floats(-0.001, 0.001))
            for pos in ring:
                if (
                    isinstance(pos, list)
                    and len(pos) >= 2
                    and all(isinstance(v, float) for v in pos[:2])
                ):
                    pos[0], pos[1] = pos[0] + dx, pos[1] + dy
    return fc


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corrupted())
def test_random_corruption_never_crashes_and_never_passes_bad_data(fc: dict[str, Any]) -> None:
    report = validate(fc)
    assert report.ok is (report.errors == [])
    for issue in report.issues:
        assert issue.rule in HINTS and issue.hint and issue.message
    # the same document as bytes (NaN written as the non-standard literal) agrees
    data = json.dumps(fc, allow_nan=True).encode()
    assert validate(data).rules() == report.rules()
    if report.ok:
        zs = ZoneSet.from_geojson(fc)
        assert len(zs) == len(fc["features"])
        ZoneIndex(zs)
