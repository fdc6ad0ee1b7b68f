"""The ``geofence`` command.

``serve`` runs the HTTP service; ``keys`` manages API keys; ``checks replay``
re-decides recorded checks; ``audit export`` writes the audit log to Parquet and
``audit prune`` removes old checks (:mod:`api.auditexport`); ``calibrate`` fits
the GNSS error model to labelled trips; ``zones`` is the zone tool (validate, diff, export,
synth from :mod:`zones.cli`, plus ``upload`` and ``activate`` against a running
server, registered here). Commands that touch the database create or migrate its
schema first. Settings come from ``GEOFENCE_*`` variables (:mod:`api.settings`).
Exit codes: 0 success, 1 the input broke a rule, 2 usage.

Modules, one a command group (importing this package registers them all, in the order
``geofence --help`` lists them; each imports what it needs, the service, the database,
rich, matplotlib, inside its commands, so ``geofence --help`` starts in a blink):

* :mod:`~api.cli.common`: the Typer app and its sub-apps, the ``--url``/``--key``
  options, reading the settings, opening the database, parsing RFC 3339 options;
* :mod:`~api.cli.serve`: ``serve`` and ``keys create|list|revoke``;
* :mod:`~api.cli.zones`: ``zones upload|activate|suggest`` (the rest of ``zones`` is
  :mod:`zones.cli`);
* :mod:`~api.cli.suggest`: what ``zones suggest`` writes: the hot spots of rejected
  trip ends as a zone-set draft (imported by that command only: it loads the service);
* :mod:`~api.cli.audit`: ``checks replay`` and its table, ``audit export|prune``;
* :mod:`~api.cli.calibrate`: ``calibrate``, its table and its reliability plot.
"""

from __future__ import annotations

# the commands register as their modules are imported: serve first, as --help lists it
from api.cli import serve  # noqa: F401

# isort: split
from api.cli import audit, calibrate, zones  # noqa: F401 (they register the commands)
from api.cli.common import app

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the ``geofence`` console script."""
    app()
