"""``/v1/checks``: trip-end checks in, decisions out, every decision in the audit log.

A decision is committed to the audit log (group commit) before its response is
sent. ``Idempotency-Key``: a retry by the same operator with the same key answers
the first recorded decision and records nothing; the same key with a different
body is refused (422). One key space per operator across the single and batch
routes: a key used on one and then on the other is 422 too, never a second decision
(a batch's first row carries the key itself, so the database's unique constraint
decides, race-free). A batch is decided and recorded all or none.

``GET /v1/checks`` searches the audit log (by trip, bike, outcome, time), newest
first, in cursor pages (:mod:`api.paging`); operators read their own checks only.

Modules, registered on one router in this order (the OpenAPI document's order):

* :mod:`~api.routes.checks.common`: the router and what the routes share (the
  ``Idempotency-Key``, reading a body, recording, answering a retry);
* :mod:`~api.routes.checks.single`: ``POST /v1/checks``;
* :mod:`~api.routes.checks.batch`: ``POST /v1/checks/batch``;
* :mod:`~api.routes.checks.reads`: ``GET /v1/checks`` and ``GET /v1/checks/{check_id}``.
"""

# isort: off
# the routes register on the router as their modules load: single, batch, then reads
from api.routes.checks.common import router
from api.routes.checks import single, batch, reads  # noqa: F401
# isort: on

__all__ = ["router"]
