"""Request and response models (pydantic), with the examples the OpenAPI document shows.

Request bodies of the hot routes are ``TypedDict`` schemas validated straight from the
raw bytes (:mod:`~api.models.requests`); response models are only documentation: routes
return JSON built by the engine. Every page of a paged list has ``next``, the relative
URL of the next page (its opaque ``cursor`` in the query) or null on the last page; the
same URL is in the ``Link: <…>; rel="next"`` header (issue 15).

Every name is re-exported here (``from api.models import X``); :mod:`api.openapi` walks
this namespace for the response models' examples, so a new model is added here too.

Modules:

* :mod:`~api.models.requests`: the check and batch request bodies, their adapters and
  schemas, the query-string time;
* :mod:`~api.models.decisions`: a decision, a batch's answer, an audit-log record and
  its page;
* :mod:`~api.models.zone_sets`: zone-set versions, their list and page, activation;
* :mod:`~api.models.policies`: the policy document's schema, policy versions, activation;
* :mod:`~api.models.stats`: check counts per group, per zone and per day;
* :mod:`~api.models.geojson`: features, collections, zones, nearest zones;
* :mod:`~api.models.map`: the map page's density, recent checks and hot spots;
* :mod:`~api.models.feeds`: the MDS and GBFS envelopes;
* :mod:`~api.models.problems`: the problem document, ``problems()``, 304, health.
"""

from api.models.decisions import (
    EXAMPLE_DECISION,
    BatchResponse,
    CheckPage,
    CheckRecord,
    Decision,
    NearestZone,
    Outcome,
    Position,
    Reason,
    ZoneRef,
)
from api.models.feeds import GbfsFile, MdsDocument, MdsError
from api.models.geojson import (
    Feature,
    FeatureCollection,
    NearestCollection,
    NearestQuery,
    ZoneCollection,
    ZoneFeature,
    ZoneProperties,
    ZoneSetDocument,
)
from api.models.map import Density, HotspotParameters, Hotspots, RecentCheck, RecentChecks
from api.models.policies import (
    EXAMPLE_POLICY,
    PolicyActivation,
    PolicyInfo,
    PolicyList,
    policy_document_schema,
)
from api.models.problems import NOT_MODIFIED, PROBLEM_JSON, Health, Problem, ProblemError, problems
from api.models.requests import (
    EXAMPLE_CHECK,
    MAX_FIXES,
    BatchRequest,
    Beacon,
    CheckRequest,
    Fix,
    Id,
    Lat,
    Lon,
    Quality,
    QueryTime,
    Text,
    Time,
    batch_adapter,
    check_adapter,
    request_schemas,
)
from api.models.stats import (
    Counts,
    DayCounts,
    SeriesLine,
    Stats,
    StatsRow,
    StatsSeries,
    StatsTotal,
    ZoneStats,
)
from api.models.zone_sets import (
    EXAMPLE_ZONE_SET,
    Activation,
    ActiveZoneSet,
    ZoneSetCreated,
    ZoneSetInfo,
    ZoneSetList,
    ZoneSetPage,
)

__all__ = [
    "EXAMPLE_CHECK",
    "EXAMPLE_DECISION",
    "EXAMPLE_POLICY",
    "EXAMPLE_ZONE_SET",
    "MAX_FIXES",
    "NOT_MODIFIED",
    "PROBLEM_JSON",
    "Activation",
    "ActiveZoneSet",
    "BatchRequest",
    "BatchResponse",
    "Beacon",
    "CheckPage",
    "CheckRecord",
    "CheckRequest",
    "Counts",
    "DayCounts",
    "Decision",
    "Density",
    "Feature",
    "FeatureCollection",
    "Fix",
    "GbfsFile",
    "Health",
    "HotspotParameters",
    "Hotspots",
    "Id",
    "Lat",
    "Lon",
    "MdsDocument",
    "MdsError",
    "NearestCollection",
    "NearestQuery",
    "NearestZone",
    "Outcome",
    "PolicyActivation",
    "PolicyInfo",
    "PolicyList",
    "Position",
    "Problem",
    "ProblemError",
    "Quality",
    "QueryTime",
    "Reason",
    "RecentCheck",
    "RecentChecks",
    "SeriesLine",
    "Stats",
    "StatsRow",
    "StatsSeries",
    "StatsTotal",
    "Text",
    "Time",
    "ZoneCollection",
    "ZoneFeature",
    "ZoneProperties",
    "ZoneRef",
    "ZoneSetCreated",
    "ZoneSetDocument",
    "ZoneSetInfo",
    "ZoneSetList",
    "ZoneSetPage",
    "ZoneStats",
    "batch_adapter",
    "check_adapter",
    "policy_document_schema",
    "problems",
    "request_schemas",
]
