"""``python -m api.audit URL SYNCHRONOUS WINDOW_S MAX_ROWS``: the writer process.

Started by :class:`api.audit.AuditWriter` (never by hand): it reads units on stdin and
answers on stdout (:mod:`api.audit.frames`). The units pickled by the server name
``api.audit.units.BatchUnit``, the class :mod:`api.audit.child` recognises: this file
is run as ``__main__`` and defines nothing of its own.
"""

import sys

from api.audit.child import _main

_main(sys.argv[1:])
