"""The ``canon`` command line: parse and dispatch; each command in ``commands/``."""
