"""Fixtures of the contract tests: a real ``geofence serve`` on loopback, its served
``/openapi.json``, and a checker that holds a real answer to the document.

The server is the README's command (:class:`api.testing.servetest.Server`) over a SQLite file,
seeded from a slice of the bundled zone set (fast to start); the keys are the ones it
prints on its first run. :class:`Contract` finds the operation a request hit, asserts
that the answer's status and media type are declared for it, and validates the body
against the declared schema with ``jsonschema`` (Draft 2020-12, the dialect of OpenAPI
3.1), ``format: date-time`` checked by the project's strict RFC 3339 parser.

The external tools (openapi-python-client, @redocly/cli) are installed, pinned, by
``.ci/install-contract-tools`` (``make test`` runs it; the ``tools`` fixture runs it when
they are missing), so that these tests fail, never skip, without them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from api.settings import DEFAULT_SEED_FILE
from api.testing.servetest import Server
from geofence.rfc3339 import parse_rfc3339

ROOT = Path(__file__).resolve().parents[2]
TOOLS = Path(os.environ.get("GEOFENCE_TOOLS", ROOT / ".tools"))
_DOC = "urn:geofence:openapi"


@pytest.fixture(scope="session")
def small_seed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled set's first 150 fenced boxes, 40 unfenced and 10 no-parking areas."""
    fc = json.loads(DEFAULT_SEED_FILE.read_text(encoding="utf-8"))
    feats = fc["features"]
    fenced = [f for f in feats if f["properties"]["fenced"]][:150]
    unfenced = [
        f for f in feats if f["properties"]["kind"] == "parking" and not f["properties"]["fenced"]
    ][:40]
    no_parking = [f for f in feats if f["properties"]["kind"] == "no_parking"][:10]
    small = {
        "type": "FeatureCollection",
        "zone_set": {"source": "contract tests: slice of the bundled Zhuhai set"},
        "features": fenced + unfenced + no_parking,
    }
    p = tmp_path_factory.mktemp("seed") / "small.geojson"
    p.write_text(json.dumps(small, ensure_ascii=False), encoding="utf-8")
    return p


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, small_seed: Path) -> Iterator[Server]:
    work = tmp_path_factory.mktemp("contract")
    srv = Server(work, seed=small_seed).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60.0) as c:
        yield c


@pytest.fixture(scope="module")
def document(http: httpx.Client) -> dict[str, Any]:
    r = http.get("/openapi.json")
    assert r.status_code == 200, r.text
    return r.json()


def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parse_rfc3339(value)  # raises ValueError: jsonschema reports the format broken
    return True


FORMATS = jsonschema.FormatChecker(formats=())
FORMATS.checks("date-time", raises=ValueError)(_date_time)


def validator(document: dict[str, Any], schema: dict[str, Any]) -> jsonschema.Validator:
    """A 2020-12 validator of ``schema``, its ``#/components/...`` refs into ``document``."""
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    registry = Registry().with_resource(_DOC, resource)
    return jsonschema.Draft202012Validator(
        {"$id": "urn:geofence:answer", **_rebase(schema)},
        registry=registry,
        format_checker=FORMATS,
    )


def _rebase(schema: Any) -> Any:
    """``#/components/...`` refs of a schema taken out of the document, made absolute."""
    if isinstance(schema, dict):
        return {
            k: (_DOC + v if k == "$ref" and v.startswith("#/") else _rebase(v))
            for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [_rebase(v) for v in schema]
    return schema


class Contract:
    """Holds real answers to the served document (see the module docstring)."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.paths = [
            (re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", p) + "$"), p) for p in document["paths"]
        ]
        #: (path template, method, status) of every answer checked
        self.seen: set[tuple[str, str, str]] = set()

    def template(self, path: str) -> str:
        exact = [p for rx, p in self.paths if p == path]
        hits = exact or [p for rx, p in self.paths if rx.match(path)]
        assert hits, f"{path} is not in the document"
        return hits[0]

    def check(self, r: httpx.Response) -> Any:
        """Assert that ``r`` is an answer the document declares; its JSON body."""
        path = self.template(r.request.url.path)
        method = r.request.method.lower()
        op = self.document["paths"][path][method]
        status = str(r.status_code)
        where = f"{method.upper()} {path} -> {status}"
        assert status in op["responses"], f"{where}: undeclared status ({r.text[:300]})"
        self.seen.add((path, method, status))
        declared = op["responses"][status].get("content")
        if r.status_code == 304 or not r.content:
            return None
        assert declared, f"{where}: the document declares no body"
        ctype = r.headers["content-type"].split(";")[0].strip()
        media = [m for m in declared if m.split(";")[0].strip() == ctype]
        assert media, f"{where}: {ctype} is not declared ({sorted(declared)})"
        schema = declared[media[0]].get("schema")
        assert schema, f"{where}: no schema for {media[0]}"
        if not (ctype.endswith("json")):
            return r.text
        body = r.json()
        errors = sorted(validator(self.document, schema).iter_errors(body), key=str)
        assert not errors, f"{where}: " + "; ".join(
            f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}" for e in errors[:5]
        )
        return body


@pytest.fixture(scope="module")
def contract(document: dict[str, Any]) -> Contract:
    return Contract(document)


@pytest.fixture(scope="session")
def tools() -> Path:
    """The pinned external tools (installed by .ci/install-contract-tools when missing)."""
    subprocess.run(["bash", str(ROOT / ".ci" / "install-contract-tools")], check=True)
    return TOOLS
