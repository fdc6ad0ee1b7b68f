"""``python -m api …`` is the ``geofence`` command (``python -m api serve``)."""

from api.cli import main

if __name__ == "__main__":
    main()
