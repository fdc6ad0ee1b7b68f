"""In-process A/B of the JSON response class the hot routes answer with: the class of
b920fbd (a plain Starlette ``Response`` with an orjson ``render``) against this
branch's (a subclass of Starlette's ``JSONResponse``, so FastAPI documents the routes'
``response_model``; ``Response.__init__`` kept). 15 interleaved rounds of 50,000
constructions of a decision's answer; median and minimum nanoseconds each.

    python bench/response_class_ab.py
"""

from __future__ import annotations

import statistics
import sys
import timeit
from pathlib import Path
from typing import Any

# bench/http/ would shadow the standard library's `http` (starlette imports it)
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson  # noqa: E402
from starlette.responses import Response  # noqa: E402

from api.responses import JSONResponse, dumps  # noqa: E402


class Before(Response):
    """``api.responses.JSONResponse`` at b920fbd."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        if isinstance(content, bytes):
            return content
        return dumps(content)


def main() -> None:
    payload = orjson.dumps({"outcome": "settle", "p_inside": 0.97, "check_id": "c_01JDQ6V3M8"})
    headers = {"Location": "/v1/checks/c_01JDQ6V3M8"}
    res: dict[str, list[float]] = {"before": [], "after": []}
    pair = (("before", Before), ("after", JSONResponse))
    for i in range(15):
        for name, cls in pair if i % 2 == 0 else pair[::-1]:
            t = timeit.timeit(lambda cls=cls: cls(payload, headers=headers), number=50_000)
            res[name].append(t / 50_000 * 1e9)
    for name, v in res.items():
        print(f"{name}: median {statistics.median(v):.0f} ns, min {min(v):.0f} ns per response")


if __name__ == "__main__":
    main()
