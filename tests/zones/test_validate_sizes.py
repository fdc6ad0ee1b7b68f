"""The upload size rules of zones.validate (issue 19): each names its feature (or the
file), each limit a :class:`~zones.validate.SizeLimits` field; the defaults pass the
bundled Zhuhai set (the synthetic 18,300-zone city)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from zones.validate import SIZE_RULES, SizeLimits, validate

CORPUS = Path(__file__).resolve().parent / "corpus"
BUNDLED = Path(__file__).resolve().parents[2] / "zones" / "data" / "zhuhai.geojson"
SMALL = SizeLimits(id_chars=20, name_chars=30, operators=3, vertices=10, set_vertices=100, zones=7)


def valid_fc() -> dict[str, Any]:
    return json.loads((CORPUS / "valid.geojson").read_text(encoding="utf-8"))


def _densify(feat: dict[str, Any], n: int) -> None:
    """``n`` extra collinear positions on the first edge of the feature's ring."""
    ring = feat["geometry"]["coordinates"][0]
    (x0, y0), (x1, y1) = ring[0], ring[1]
    mid = [[x0 + (x1 - x0) * k / (n + 1), y0 + (y1 - y0) * k / (n + 1)] for k in range(1, n + 1)]
    feat["geometry"]["coordinates"][0] = [ring[0], *mid, *ring[1:]]


def _broken(rule: str) -> dict[str, Any]:
    fc = valid_fc()
    f = fc["features"][2]
    if rule == "id-too-long":
        f["id"] = "ZH-XZ-" + "9" * 30
    elif rule == "name-too-long":
        f["properties"]["name"] = "长" * 31
    elif rule == "too-many-operators":
        f["properties"]["operators"] = ["meituan", "hellobike", "qingju", "other"]
    elif rule == "too-many-vertices":
        _densify(f, 6)
    elif rule == "too-many-zones":
        fc["features"].append(copy.deepcopy(fc["features"][0]) | {"id": "ZH-XZ-extra"})
    return fc


@pytest.mark.parametrize(
    "rule", ["id-too-long", "name-too-long", "too-many-operators", "too-many-vertices"]
)
def test_a_feature_over_a_size_limit_is_an_error_naming_it(rule: str) -> None:
    assert validate(valid_fc(), limits=SMALL).ok
    report = validate(_broken(rule), limits=SMALL)
    assert report.rules() == {rule}, [(i.rule, i.message) for i in report.issues]
    [issue] = report.issues
    assert issue.severity == "error" and issue.index == 2 and issue.hint
    assert issue.feature is not None and issue.feature.startswith("ZH-XZ-9")
    assert len(issue.feature) <= SMALL.id_chars + 1  # a long id is not echoed whole


def test_too_many_zones_is_a_file_error() -> None:
    report = validate(_broken("too-many-zones"), limits=SMALL)
    assert report.rules() == {"too-many-zones"}
    assert report.issues[0].feature is None


def test_too_many_vertices_in_a_set_is_a_file_error() -> None:
    fc = valid_fc()

    def positions(c: Any) -> int:
        return 1 if isinstance(c[0], float | int) else sum(positions(x) for x in c)

    n = sum(positions(f["geometry"]["coordinates"]) for f in fc["features"])
    assert validate(fc, limits=SizeLimits(set_vertices=n)).ok
    report = validate(fc, limits=SizeLimits(set_vertices=n - 1))
    assert report.rules() == {"too-many-vertices-in-set"}
    assert report.issues[0].feature is None and not report.ok


def test_the_defaults_pass_the_bundled_city() -> None:
    report = validate(BUNDLED)
    assert report.ok and report.n_features == 18_300
    assert not {i.rule for i in report.issues} & SIZE_RULES
