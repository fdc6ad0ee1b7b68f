"""The served document linted by a standard OpenAPI linter, and fuzzed against the real
server (issue 15).

- ``@redocly/cli lint`` (pinned in .ci/install-contract-tools) with its recommended
  rules: no error (warnings are printed, not failed: its only one here asks a 4xx of
  routes that cannot fail, such as ``/healthz``);
- schemathesis (pinned in pyproject's dev dependencies), once with an operator key and
  once with an admin key: examples, coverage and fuzzing phases, bounded (10 examples per
  operation, 45 s per key), checking that no answer is a server error and that every
  answer's status, media type, headers and body are the ones the document declares. One
  worker: schemathesis 4.32 with several threads trips over CPython 3.11's AST parser
  (hypothesis describing its lambdas), an error of the tool, not of the server.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from api.testing.servetest import Server


def test_redocly_lint_finds_no_error(tools: Path, document: dict[str, Any], tmp_path: Path) -> None:
    doc = tmp_path / "openapi.json"
    doc.write_text(json.dumps(document), encoding="utf-8")
    r = subprocess.run(
        [str(tools / "node" / "node_modules" / ".bin" / "redocly"), "lint", str(doc)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=os.environ | {"REDOCLY_TELEMETRY": "off", "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true"},
        timeout=300,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "Your API description is valid" in out, out
    assert " error " not in out, out


@pytest.mark.parametrize("who", ["meituan", "admin"])
def test_schemathesis_finds_no_breach(server: Server, who: str, tmp_path: Path) -> None:
    st = Path(sys.executable).with_name("st")
    r = subprocess.run(
        [
            str(st),
            "run",
            f"{server.url}/openapi.json",
            "--header",
            f"X-API-Key: {server.keys[who]}",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,"
            "response_headers_conformance,response_schema_conformance",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "10",
            "--max-time",
            "45",
            "--workers",
            "1",
            "--request-timeout",
            "30",
            "--seed",
            "15",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # its example database and reports stay out of the checkout
        env=os.environ | {"SCHEMATHESIS_TELEMETRY": "false"},
        timeout=240,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    counts = re.search(r"(\d+) generated, (\d+) passed", out)
    assert counts and counts[1] == counts[2] and int(counts[1]) > 300, out[-6000:]
    assert not [line for line in server.stderr().splitlines() if "Traceback" in line]
