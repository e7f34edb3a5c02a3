"""One module per command: :mod:`ncanalyze.cli` registers them on the root app.

Each module defines ``EPILOG`` (the example shown by ``--help``) and one function named after
the command, returning its exit code; :func:`ncanalyze.cli.boundary.command` wraps it.
"""

