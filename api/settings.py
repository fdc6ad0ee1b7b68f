"""Settings of the HTTP service, read from ``GEOFENCE_*`` environment variables.

One pydantic-settings class per concern; :class:`Settings` bundles them. They are
built once, at the outer edge (``create_app`` from the environment, or the CLI), and
passed down as plain values: nothing in ``api`` reads the environment at import time.

==================================== ============================== ==============================
variable                             default                        meaning
==================================== ============================== ==============================
``GEOFENCE_DATABASE_URL``            ``sqlite:///var/geofence.db``  SQLAlchemy URL (SQLite or
                                                                    ``postgresql+psycopg://…``)
``GEOFENCE_SQLITE_SYNCHRONOUS``      ``FULL``                       SQLite ``PRAGMA synchronous``
``GEOFENCE_DB_POOL_SIZE``            ``8``                          connections per process (as
                                                                    many again in bursts; each
                                                                    process's audit writer: 1 more)
``GEOFENCE_HOST`` / ``_PORT``        ``127.0.0.1`` / ``8000``       where ``geofence serve`` binds
``GEOFENCE_WORKERS``                 ``1``                          uvicorn worker processes
``GEOFENCE_LOG_LEVEL``               ``info``                       ``debug`` … ``error``
``GEOFENCE_ACCESS_LOG``              ``true``                       one JSON line per request
``GEOFENCE_MAX_BODY_BYTES``          ``67108864`` (64 MiB)          larger bodies get 413
``GEOFENCE_BATCH_LIMIT``             ``10000``                      checks per batch (more: 413)
``GEOFENCE_COMMIT_WINDOW_MS``        ``0``                          group commit: extra wait for
                                                                    more rows (0 = take what is
                                                                    queued)
``GEOFENCE_COMMIT_MAX_ROWS``         ``20000``                      rows per commit at most
``GEOFENCE_POLICY``                  ``{}``                         JSON overrides of
                                                                    ``geofence.Policy`` fields:
                                                                    policy version 1, stored
                                                                    on the first start only
``GEOFENCE_SEED_FILE``               bundled ``zhuhai.geojson``     seeds an empty database
``GEOFENCE_KEY_CACHE_SECONDS``       ``1.0``                        how long a verified key is
                                                                    trusted before re-reading it
``GEOFENCE_ACTIVE_POLL_SECONDS``     ``0.5``                        how often a process checks the
                                                                    active version (activations
                                                                    made through other processes)
``GEOFENCE_GC_FREEZE``               ``true``                       keep the loaded index out of
                                                                    the cyclic GC (no 100 ms pauses)
``GEOFENCE_FEED_SYSTEM_ID``          ``zhuhai-parking``             GBFS system_id, MDS id seed
``GEOFENCE_FEED_NAME`` / ``_OPERATOR`` the system's name / none       GBFS system_information
``GEOFENCE_FEED_CONTACT_EMAIL``      ``gbfs@example.invalid``       GBFS feed_contact_email (set
                                                                    a real one: 3.0 says MUST)
``GEOFENCE_FEED_URL``                none                           GBFS url
``GEOFENCE_FEED_TIMEZONE``           ``Asia/Shanghai``              GBFS timezone
``GEOFENCE_FEED_LICENSE_ID`` / _URL  none                           the feeds' licence (SPDX id
                                                                    or a custom licence's URL)
``GEOFENCE_FEED_TTL_SECONDS``        ``3600``                       GBFS ttl
``GEOFENCE_FEED_BASE_URL``           the request's                  public URL the feeds are
                                                                    served under (behind a proxy)
**hardening (issue 19)**
``GEOFENCE_MAX_FIXES``               ``50``                         fixes per check (counted
                                                                    before parsing; at most 50)
``GEOFENCE_MAX_CHECK_BYTES``         ``262144`` (256 KiB)           a single check's body (413)
``GEOFENCE_MAX_PROBLEM_ERRORS``      ``100``                        error items of a problem
                                                                    document (the rest counted)
``GEOFENCE_HEADER_TIMEOUT_S``        ``10``                         a request's line and headers
                                                                    must arrive within this
``GEOFENCE_BODY_TIMEOUT_S``          ``60``                         its body within this after
``GEOFENCE_KEEPALIVE_TIMEOUT_S``     ``5``                          idle keep-alive connections
                                                                    are closed after this
``GEOFENCE_MAX_CONNECTIONS``         ``1000``                       open connections per process
                                                                    (more are closed at once)
``GEOFENCE_AUTH_FAILURES_PER_MIN``   ``60``                         failed authentications per
                                                                    client address (then 429)
``GEOFENCE_KEY_RATE_PER_S``          ``0`` (off)                    requests per second per key
``GEOFENCE_KEY_RATE_BURST``          ``0`` (= 2 s of the rate)      burst per key
``GEOFENCE_HOTSPOT_MAX_DAYS``        ``93``                         hot-spot window at most
``GEOFENCE_HOTSPOT_MAX_REJECTS``     ``250000``                     rejects a hot-spot query
                                                                    reads at most (422 beyond)
``GEOFENCE_HOTSPOT_RADIUS_M``        ``2`` - ``20``                 hot-spot radius range
                                                                    (``_MIN_M`` / ``_MAX_M``)
``GEOFENCE_ZONE_ID_MAX``             ``64``                         characters of a zone id
``GEOFENCE_ZONE_NAME_MAX``           ``200``                        characters of a zone name
``GEOFENCE_ZONE_OPERATORS_MAX``      ``64``                         operators (or beacons) per
                                                                    zone
``GEOFENCE_ZONE_VERTICES_MAX``       ``10000``                      vertices per zone
``GEOFENCE_ZONE_SET_VERTICES_MAX``   ``2000000``                    vertices per zone set
``GEOFENCE_ZONE_SET_ZONES_MAX``      ``60000``                      zones per zone set
==================================== ============================== ==============================
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_SEED_FILE", "Settings"]

DEFAULT_SEED_FILE = Path(__file__).resolve().parent.parent / "zones" / "data" / "zhuhai.geojson"

_CONFIG = SettingsConfigDict(env_prefix="GEOFENCE_", extra="ignore", frozen=True)


class Settings(BaseSettings):
    """Every setting of the service (see the module docstring for the variables)."""

    model_config = _CONFIG

    # storage
    database_url: str = "sqlite:///var/geofence.db"
    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = "FULL"
    db_pool_size: int = Field(8, ge=1, le=100)
    seed_file: Path = DEFAULT_SEED_FILE

    # server
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64)
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    access_log: bool = True

    # request limits
    max_body_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    batch_limit: int = Field(10_000, ge=1)
    zones_page_limit: int = Field(10_000, ge=1)

    # audit log group commit
    commit_window_ms: float = Field(0.0, ge=0.0, le=1000.0)
    commit_max_rows: int = Field(20_000, ge=1)

    # decisions
    policy: dict[str, Any] = Field(default_factory=dict)

    # caches and background work
    key_cache_seconds: float = Field(1.0, ge=0.0)
    active_poll_seconds: float = Field(0.5, gt=0.0)
    gc_freeze: bool = True

    # GBFS / MDS feed metadata (zones.export.gbfs.FeedMeta; checked at startup)
    feed_system_id: str = "zhuhai-parking"
    feed_name: str | None = None
    feed_operator: str | None = None
    feed_contact_email: str = "gbfs@example.invalid"
    feed_url: str | None = None
    feed_timezone: str = "Asia/Shanghai"
    feed_license_id: str | None = None
    feed_license_url: str | None = None
    feed_ttl_seconds: int = Field(3600, ge=0)
    feed_base_url: str | None = None

    # hardening against hostile input and load (issue 19): every bound a setting
    max_fixes: int = Field(50, ge=1, le=50)
    max_check_bytes: int = Field(256 * 1024, ge=1024)
    max_problem_errors: int = Field(100, ge=1, le=10_000)
    header_timeout_s: float = Field(10.0, gt=0.0)
    body_timeout_s: float = Field(60.0, gt=0.0)
    keepalive_timeout_s: int = Field(5, ge=1)
    max_connections: int = Field(1000, ge=1)
    auth_failures_per_min: int = Field(60, ge=0)
    key_rate_per_s: float = Field(0.0, ge=0.0)
    key_rate_burst: int = Field(0, ge=0)
    hotspot_max_days: float = Field(93.0, gt=0.0)
    hotspot_max_rejects: int = Field(250_000, ge=1)
    hotspot_radius_min_m: float = Field(2.0, gt=0.0)
    hotspot_radius_max_m: float = Field(20.0, gt=0.0)
    zone_id_max: int = Field(64, ge=1)
    zone_name_max: int = Field(200, ge=1)
    zone_operators_max: int = Field(64, ge=1)
    zone_vertices_max: int = Field(10_000, ge=4)
    zone_set_vertices_max: int = Field(2_000_000, ge=4)
    zone_set_zones_max: int = Field(60_000, ge=1)

    def zone_limits(self) -> Any:
        """The upload size rules of :func:`zones.validate.validate`."""
        from zones.validate import SizeLimits

        return SizeLimits(
            id_chars=self.zone_id_max,
            name_chars=self.zone_name_max,
            operators=self.zone_operators_max,
            vertices=self.zone_vertices_max,
            set_vertices=self.zone_set_vertices_max,
            zones=self.zone_set_zones_max,
        )

    def feed_meta(self) -> Any:
        """The feeds' publisher (a checked ``zones.export.gbfs.FeedMeta``)."""
        from zones.export.gbfs import SYSTEM_NAME, FeedMeta

        return FeedMeta(
            system_id=self.feed_system_id,
            name=self.feed_name or SYSTEM_NAME,
            operator=self.feed_operator,
            feed_contact_email=self.feed_contact_email,
            url=self.feed_url,
            timezone=self.feed_timezone,
            license_id=self.feed_license_id,
            license_url=self.feed_license_url,
        ).check()

    @model_validator(mode="after")
    def _check_feed_meta(self) -> Settings:
        from zones.export.gbfs import FeedMetaError

        try:
            self.feed_meta()
        except FeedMetaError as exc:
            var = "CONTACT_EMAIL" if exc.field == "feed_contact_email" else exc.field.upper()
            raise ValueError(f"GEOFENCE_FEED_{var}: {str(exc).split(': ', 1)[1]}") from None
        return self

    def is_sqlite(self) -> bool:
        """True when the database is SQLite."""
        return self.database_url.startswith("sqlite")
