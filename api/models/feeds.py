"""The open-standard feeds' envelopes: MDS 2.0 Geography (and its error object) and
GBFS 3.0 / 2.3 files; their ``data`` is defined by the official schemas.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class MdsDocument(BaseModel):
    """An MDS 2.0 Geography answer, as the official reference defines it
    (`zones/schemas/mds-2.0/reference/geography.yaml`)."""

    version: str
    data: dict[str, Any] | None = None
    geographies: list[dict[str, Any]] | None = None
    geography: dict[str, Any] | None = None


class MdsError(BaseModel):
    """MDS's error object (the MDS routes answer it, not a problem document)."""

    error: str
    error_description: str
    error_details: list[str]


class GbfsFile(BaseModel):
    """A GBFS 3.0 or 2.3 file (the official GBFS JSON schemas define ``data``)."""

    last_updated: int | str = Field(description="POSIX time (2.3) or RFC 3339 (3.0)")
    ttl: int
    version: str
    data: dict[str, Any]
