"""Regenerate the validation corpus: ``.venv/bin/python tests/zones/corpus/make_corpus.py``.

One file per rule of ``zones.validate``, each holding two good boxes in Xiangzhou
(around lon 113.55, lat 22.25) and the broken feature(s), plus ``valid.geojson``.
``<name>.reference.geojson`` is the reference layer ``<name>.geojson`` is checked
against. ``EXPECTED`` (read by the tests) maps each file to the one rule it breaks.
The files are committed; this script documents how they were made.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

LON0, LAT0 = 113.55, 22.25
M_PER_DEG_LAT = 110_574.0
M_PER_DEG_LON = 111_320.0 * math.cos(math.radians(LAT0))

# file stem -> the rule it breaks
EXPECTED: dict[str, str] = {
    "not-json": "not-json",
    "not-feature-collection": "not-feature-collection",
    "unsupported-crs": "unsupported-crs",
    "no-features": "no-features",
    "not-a-feature": "not-a-feature",
    "missing-id": "missing-id",
    "bad-id-type": "bad-id-type",
    "duplicate-id": "duplicate-id",
    "unknown-kind": "unknown-kind",
    "bad-properties": "bad-properties",
    "bad-property-type": "bad-property-type",
    "bad-active-period": "bad-active-period",
    "missing-property": "missing-property",
    "missing-geometry": "missing-geometry",
    "bad-geometry-type": "bad-geometry-type",
    "multipolygon-box": "bad-geometry-type",
    "bad-geometry": "bad-geometry",
    "empty-geometry": "empty-geometry",
    "nan-coordinate": "non-finite-coordinate",
    "infinite-coordinate": "non-finite-coordinate",
    "too-few-positions": "too-few-positions",
    "unclosed-ring": "unclosed-ring",
    "lonlat-swapped": "lonlat-swapped",
    "lonlat-out-of-range": "lonlat-out-of-range",
    "zero-area": "zero-area",
    "bowtie": "self-intersection",
    "hole-outside-shell": "invalid-geometry",
    "clockwise-exterior": "clockwise-exterior",
    "counter-clockwise-hole": "counter-clockwise-hole",
    "outside-service-area": "outside-service-area",
    "partly-outside-service-area": "partly-outside-service-area",
    "looks-like-gcj02": "looks-like-gcj02",
    "looks-like-bd09": "looks-like-bd09",
    "implausible-box-size": "implausible-box-size",
    "overlapping-boxes": "overlapping-boxes",
}


def r7(v: float) -> float:
    return round(v, 7)


def box_ring(
    lon: float, lat: float, width_m: float = 2.5, length_m: float = 8.0, angle_deg: float = 0.0
) -> list[list[float]]:
    """A closed CCW rectangle centred on (lon, lat), its length along ``angle_deg``
    (counter-clockwise from east)."""
    a = math.radians(angle_deg)
    ux, uy = math.cos(a), math.sin(a)  # along the length
    vx, vy = -uy, ux  # across
    hl, hw = length_m / 2, width_m / 2
    corners = [(-hl, -hw), (hl, -hw), (hl, hw), (-hl, hw)]
    ring = [
        [
            r7(lon + (s * ux + t * vx) / M_PER_DEG_LON),
            r7(lat + (s * uy + t * vy) / M_PER_DEG_LAT),
        ]
        for s, t in corners
    ]
    return [*ring, ring[0]]


def props(kind: str = "parking", **kw: Any) -> dict[str, Any]:
    p: dict[str, Any] = {
        "kind": kind,
        "fenced": kind == "parking",
        "district": "香洲区",
        "name": "吉大九洲大道中 #1" if kind == "parking" else "九洲大道路口禁停区",
        "capacity": 10 if kind == "parking" else 0,
        "operators": [],
        "heading_deg": None,
        "beacons": [],
        "active_from": None,
        "active_to": None,
    }
    p.update(kw)
    return p


def feature(fid: Any, coords: Any, *, gtype: str = "Polygon", **kw: Any) -> dict[str, Any]:
    f: dict[str, Any] = {
        "type": "Feature",
        "id": fid,
        "geometry": {"type": gtype, "coordinates": coords},
        "properties": props(**kw),
    }
    if fid is None:
        del f["id"]
    return f


def good_boxes() -> list[dict[str, Any]]:
    return [
        feature("ZH-XZ-900001", [box_ring(LON0, LAT0)]),
        feature(
            "ZH-XZ-900002",
            [box_ring(LON0 + 0.0003, LAT0, 2.0, 12.0, 30.0)],
            heading_deg=30.0,
            operators=["meituan", "hellobike"],
            beacons=["BLE-0001", "BLE-0002"],
            active_from="2024-05-01T00:00:00+08:00",
            active_to=None,
        ),
    ]


def fc(*extra: dict[str, Any], **members: Any) -> dict[str, Any]:
    return {"type": "FeatureCollection", **members, "features": [*good_boxes(), *extra]}


def bad(fid: str = "ZH-XZ-900003", **kw: Any) -> dict[str, Any]:
    """The third box, about 40 m east of the first (before breaking it)."""
    return feature(fid, [box_ring(LON0 + 0.0004, LAT0 + 0.0002)], **kw)


def with_ring(ring: Any) -> dict[str, Any]:
    f = bad()
    f["geometry"]["coordinates"] = [ring]
    return f


def square(lon: float, lat: float, half_m: float) -> list[list[float]]:
    return box_ring(lon, lat, 2 * half_m, 2 * half_m)


def valid() -> dict[str, Any]:
    # two boxes that touch along a shared edge (allowed), exact shared coordinates
    w, l_ = 2.5 / M_PER_DEG_LAT, 6.0 / M_PER_DEG_LON
    x0, y0 = r7(LON0 - 0.0006), r7(LAT0 - 0.0003)
    x1, x2, y1 = r7(x0 + l_), r7(x0 + 2 * l_), r7(y0 + w)
    touching = [
        feature("ZH-XZ-900010", [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]),
        feature("ZH-XZ-900011", [[[x1, y0], [x2, y0], [x2, y1], [x1, y1], [x1, y0]]]),
    ]
    hole = list(reversed(square(LON0 + 0.0010, LAT0 - 0.0010, 10.0)))  # clockwise
    no_parking = [
        feature(
            "ZH-XZ-NP-9001",
            [square(LON0 + 0.0010, LAT0 - 0.0010, 40.0), hole],
            kind="no_parking",
        ),
        feature(
            "ZH-XZ-NP-9002",
            [
                [square(LON0 - 0.0020, LAT0 + 0.0020, 15.0)],
                [square(LON0 - 0.0010, LAT0 + 0.0020, 15.0)],
            ],
            gtype="MultiPolygon",
            kind="no_parking",
        ),
    ]
    unfenced = bad("ZH-XZ-900012", fenced=False, capacity=0, name="", district="香洲区")
    return fc(*touching, unfenced, *no_parking)


def corpus() -> dict[str, Any]:
    """file stem -> document (a str is written as is)."""
    from geofence import crs
    from zones.districts import service_area

    docs: dict[str, Any] = {"valid": valid()}
    good = json.dumps(fc(bad()), ensure_ascii=False)
    docs["not-json"] = good[: len(good) // 2]
    docs["not-feature-collection"] = bad()
    docs["unsupported-crs"] = fc(
        bad(), crs={"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::3857"}}
    )
    docs["no-features"] = {"type": "FeatureCollection", "features": []}
    docs["not-a-feature"] = fc(bad()["geometry"])
    docs["missing-id"] = fc(bad(None))  # type: ignore[arg-type]
    docs["bad-id-type"] = fc(bad(900003))  # type: ignore[arg-type]
    docs["duplicate-id"] = fc(bad("ZH-XZ-900001"))
    docs["unknown-kind"] = fc(bad(kind="bike_lane"))
    f = bad()
    f["properties"] = ["parking", True]
    docs["bad-properties"] = fc(f)
    docs["bad-property-type"] = fc(bad(capacity="ten"))
    docs["bad-active-period"] = fc(
        bad(active_from="2024-06-01T00:00:00+08:00", active_to="2024-05-01T00:00:00+08:00")
    )
    f = bad()
    del f["properties"]["fenced"]
    docs["missing-property"] = fc(f)
    f = bad()
    f["geometry"] = None
    docs["missing-geometry"] = fc(f)
    f = bad()
    f["geometry"] = {"type": "Point", "coordinates": [LON0, LAT0]}
    docs["bad-geometry-type"] = fc(f)
    f = bad()
    f["geometry"] = {"type": "MultiPolygon", "coordinates": [f["geometry"]["coordinates"]]}
    docs["multipolygon-box"] = fc(f)
    ring = box_ring(LON0 + 0.0004, LAT0 + 0.0002)
    ring[2] = "113.5504,22.2502"  # type: ignore[call-overload]
    docs["bad-geometry"] = fc(with_ring(ring))
    f = bad()
    f["geometry"]["coordinates"] = []
    docs["empty-geometry"] = fc(f)
    ring = box_ring(LON0 + 0.0004, LAT0 + 0.0002)
    ring[1][1] = math.nan
    docs["nan-coordinate"] = fc(with_ring(ring))
    ring = box_ring(LON0 + 0.0004, LAT0 + 0.0002)
    ring[2][0] = math.inf
    docs["infinite-coordinate"] = fc(with_ring(ring))
    ring = box_ring(LON0 + 0.0004, LAT0 + 0.0002)
    docs["too-few-positions"] = fc(with_ring([ring[0], ring[1], ring[0]]))
    docs["unclosed-ring"] = fc(with_ring(box_ring(LON0 + 0.0004, LAT0 + 0.0002)[:-1]))
    docs["lonlat-swapped"] = fc(with_ring([[y, x] for x, y in ring]))
    # a box written in EPSG:4547 metres instead of lon/lat
    px, py = crs.project([p[0] for p in ring], [p[1] for p in ring])
    docs["lonlat-out-of-range"] = fc(
        with_ring([[round(float(x), 3), round(float(y), 3)] for x, y in zip(px, py, strict=True)])
    )
    docs["zero-area"] = fc(with_ring([ring[0], ring[1], ring[1], ring[0]]))
    docs["bowtie"] = fc(with_ring([ring[0], ring[1], ring[3], ring[2], ring[0]]))
    f = bad(kind="no_parking")
    f["geometry"]["coordinates"] = [
        square(LON0 + 0.0010, LAT0 - 0.0010, 20.0),
        list(reversed(square(LON0 + 0.0020, LAT0 - 0.0010, 5.0))),
    ]
    docs["hole-outside-shell"] = fc(f)
    docs["clockwise-exterior"] = fc(with_ring(list(reversed(ring))))
    f = bad(kind="no_parking")
    f["geometry"]["coordinates"] = [
        square(LON0 + 0.0010, LAT0 - 0.0010, 20.0),
        square(LON0 + 0.0010, LAT0 - 0.0010, 5.0),  # CCW: should be CW
    ]
    docs["counter-clockwise-hole"] = fc(f)
    docs["outside-service-area"] = fc(feature("ZH-XZ-900003", [box_ring(113.2644, 23.1291)]))
    # a box centred on the city outline, on the land border with Zhongshan
    import shapely

    sa = service_area()
    edge = shapely.get_exterior_ring(max(sa.geoms, key=lambda g: g.area))
    near = shapely.get_point(shapely.shortest_line(edge, shapely.Point(113.45, 22.42)), 0)
    docs["partly-outside-service-area"] = fc(feature("ZH-XZ-900003", [box_ring(near.x, near.y)]))

    # GCJ-02 / BD-09: the same boxes, the third re-exported in the wrong datum
    reference = fc(bad())
    for name, conv in (("gcj02", crs.wgs84_to_gcj02), ("bd09", crs.wgs84_to_bd09)):
        doc = copy.deepcopy(reference)
        r = doc["features"][2]["geometry"]["coordinates"][0]
        lon, lat = conv([p[0] for p in r], [p[1] for p in r])
        doc["features"][2]["geometry"]["coordinates"][0] = [
            [r7(float(x)), r7(float(y))] for x, y in zip(lon, lat, strict=True)
        ]
        docs[f"looks-like-{name}"] = doc
        docs[f"looks-like-{name}.reference"] = reference
    docs["implausible-box-size"] = fc(
        feature("ZH-XZ-900003", [box_ring(LON0 + 0.0004, LAT0 + 0.0002, 0.5, 60.0)])
    )
    docs["overlapping-boxes"] = fc(
        feature("ZH-XZ-900003", [box_ring(LON0 + 1.0 / M_PER_DEG_LON, LAT0)])
    )
    return docs


def main() -> None:
    docs = corpus()
    stems = {s for s in docs if not s.endswith(".reference")} - {"valid"}
    assert stems == set(EXPECTED), stems ^ set(EXPECTED)
    for old in HERE.glob("*.geojson"):
        old.unlink()
    for stem, doc in docs.items():
        text = doc if isinstance(doc, str) else json.dumps(doc, ensure_ascii=False, indent=1)
        (HERE / f"{stem}.geojson").write_text(text + "\n", encoding="utf-8")
    (HERE / "EXPECTED.json").write_text(json.dumps(EXPECTED, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(docs)} files to {HERE}")


if __name__ == "__main__":
    main()
