"""The operator's and the city's flows through the client that openapi-python-client
generates from the served ``/openapi.json`` (package ``geofence_client``).

Not a pytest module: ``tests/contract/test_client.py`` generates the client, type-checks
this file with ``mypy --strict`` against it (a drift between the document and the
answers a client expects is a type error here, or a failed ``isinstance`` below), then
runs it against a real server: ``python client_flow.py URL OPERATOR_KEY ADMIN_KEY
SEED_FILE LON LAT`` (a point inside a fenced box of the seed). Every answer must be a
model instance, every error a ``Problem``.
"""

from __future__ import annotations

import json
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
from geofence_client import AuthenticatedClient
from geofence_client.api.checks import get_check, post_batch, post_check, search_checks
from geofence_client.api.stats import stats
from geofence_client.api.zone_sets import (
    activate_zone_set,
    active_zone_set,
    list_zone_sets,
    upload_zone_set,
)
from geofence_client.models import (
    Activation,
    ActiveZoneSet,
    BatchRequest,
    BatchResponse,
    CheckPage,
    CheckRecord,
    CheckRequest,
    CheckRequestVehicleType,
    Decision,
    DecisionOutcome,
    Fix,
    FixQualityType0,
    Problem,
    Stats,
    StatsGroupBy,
    ZoneSetCreated,
    ZoneSetDocument,
    ZoneSetPage,
)

ENDED_AT = datetime(2026, 11, 26, 8, 15, 30, tzinfo=timezone(timedelta(hours=8)))


def connect(url: str, key: str) -> AuthenticatedClient:
    return AuthenticatedClient(
        base_url=url,
        token=key,
        prefix="",
        auth_header_name="X-API-Key",
        raise_on_unexpected_status=True,  # an undeclared status raises
        timeout=httpx.Timeout(60.0),
    )


def check(trip: str, lon: float, lat: float) -> CheckRequest:
    return CheckRequest(
        trip_id=trip,
        bike_id=f"B-{trip}",
        vehicle_type=CheckRequestVehicleType.BIKE,
        ended_at=ENDED_AT,
        fixes=[Fix(lon=lon, lat=lat, accuracy_m=0.5, quality=FixQualityType0.RTK_FIXED)],
    )


def operator_flow(url: str, key: str, lon: float, lat: float) -> str:
    """Check, retry, batch, a conflict, a 422: the id of the first decision."""
    run = uuid.uuid4().hex[:8]
    with connect(url, key) as client:
        body = check(f"T-{run}-1", lon, lat)
        first = post_check.sync(client=client, body=body, idempotency_key=f"{run}-1")
        assert isinstance(first, Decision), first
        assert first.outcome is DecisionOutcome.SETTLE and first.check_id is not None
        assert first.position.accuracy_m > 0 and first.decided_at.tzinfo is not None

        retry = post_check.sync_detailed(client=client, body=body, idempotency_key=f"{run}-1")
        assert isinstance(retry.parsed, Decision), retry.parsed
        assert retry.parsed.check_id == first.check_id
        assert retry.headers["Idempotent-Replayed"] == "true"

        batch = post_batch.sync(
            client=client,
            body=BatchRequest(checks=[check(f"T-{run}-b{i}", lon, lat) for i in range(3)]),
            idempotency_key=f"{run}-batch",
        )
        assert isinstance(batch, BatchResponse), batch
        assert len(batch.results) == 3
        assert all(isinstance(d, Decision) for d in batch.results)
        assert len({d.check_id for d in batch.results}) == 3

        other = check(f"T-{run}-2", lon, lat)
        conflict = post_check.sync(client=client, body=other, idempotency_key=f"{run}-1")
        assert isinstance(conflict, Problem), conflict
        assert conflict.status == 422 and conflict.type_ == "/problems/idempotency-conflict"

        bad = check(f"T-{run}-3", lon, 91.0)
        invalid = post_check.sync(client=client, body=bad)
        assert isinstance(invalid, Problem), invalid
        assert invalid.status == 422 and invalid.type_ == "/problems/validation"
        assert invalid.errors and invalid.errors[0].pointer == "/fixes/0/lat"

        record = get_check.sync(first.check_id, client=client)
        assert isinstance(record, CheckRecord), record
        assert record.decision.check_id == first.check_id and record.batch_id is None

        # ---- list own checks: GET /v1/checks?trip_id=...
        own = search_checks.sync(client=client, trip_id=f"T-{run}-1")
        assert isinstance(own, CheckPage), own
        assert [r.decision.check_id for r in own.checks] == [first.check_id]
        assert all(isinstance(r, CheckRecord) for r in own.checks) and own.next_ is None
        page = search_checks.sync(client=client, trip_id=f"T-{run}-b1", limit=1)
        assert isinstance(page, CheckPage), page
        assert [r.decision.check_id for r in page.checks] == [batch.results[1].check_id]
        assert page.checks[0].batch_id is not None  # recorded by the batch route
        others = search_checks.sync(client=client, operator="no-such-operator")
        assert isinstance(others, Problem), others
        assert others.status == 403, others
        return first.check_id


def admin_flow(url: str, admin_key: str, operator_key: str, seed: Path) -> None:
    """Upload a zone set, activate it, roll back, read the statistics."""
    with connect(url, admin_key) as client:
        before = active_zone_set.sync(client=client)
        assert isinstance(before, ActiveZoneSet), before
        doc = ZoneSetDocument.from_dict(json.loads(seed.read_text(encoding="utf-8")))
        created = upload_zone_set.sync(client=client, body=doc, source="client flow")
        assert isinstance(created, ZoneSetCreated), created
        assert created.active is False and created.n_zones == len(doc.features)

        listed = list_zone_sets.sync(client=client)
        assert isinstance(listed, ZoneSetPage), listed
        assert listed.active == before.version
        assert created.version in [z.version for z in listed.zone_sets]

        up = activate_zone_set.sync(created.version, client=client)
        assert isinstance(up, Activation), up
        assert up.active == created.version and up.previous == before.version
        now = active_zone_set.sync(client=client)
        assert isinstance(now, ActiveZoneSet) and now.version == created.version
        assert now.build_seconds >= 0

        back = activate_zone_set.sync(before.version, client=client)
        assert isinstance(back, Activation), back
        assert back.active == before.version and back.previous == created.version

        missing = activate_zone_set.sync(2**31 - 1, client=client)
        assert isinstance(missing, Problem) and missing.status == 404, missing

        counts = stats.sync(client=client, group_by=StatsGroupBy.OPERATOR)
        assert isinstance(counts, Stats), counts
        assert counts.total.checks >= 4 and counts.total.settle >= 4

    with connect(url, operator_key) as client:
        forbidden = stats.sync(client=client)
        assert isinstance(forbidden, Problem) and forbidden.status == 403, forbidden


def main(argv: list[str]) -> None:
    url, operator_key, admin_key, seed, lon, lat = argv
    operator_flow(url, operator_key, float(lon), float(lat))
    admin_flow(url, admin_key, operator_key, Path(seed))
    print("client flows: ok")


if __name__ == "__main__":
    main(sys.argv[1:])
