"""The HTTP service and the command line: the outer edge where settings are read."""
