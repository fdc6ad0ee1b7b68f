"""Imports inside ``api/`` point one way: the storage, the audit writer and the
operations on the audit log load nothing of the web layer (the command line and the
audit writer's process import them without FastAPI)."""

from __future__ import annotations

import subprocess
import sys

import pytest

WEB = ("fastapi", "starlette", "uvicorn", "api.app", "api.routes", "api.server", "api.habits")


@pytest.mark.parametrize(
    "module",
    [
        "api.storage",
        "api.audit",
        "api.audit.child",
        "api.operations.replay",
        "api.operations.hotspots",
        "api.operations.mapdata",
        "api.operations.labels",
        "api.operations.auditexport",
    ],
)
def test_inner_packages_load_no_web_module(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        f"web = {WEB!r}\n"
        "print(sorted(m for m in sys.modules if m.startswith(web)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"{module} loads {out.stdout.strip()}"
