"""``python -m bench.gnss``: :func:`bench.gnss.runner.main`."""

from bench.gnss.runner import main

main()
