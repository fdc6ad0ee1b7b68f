"""``python -m bench.decisions``: :func:`bench.decisions.runner.main`."""

from bench.decisions.runner import main

main()
