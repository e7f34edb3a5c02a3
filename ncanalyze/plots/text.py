"""Text from a user or a file, drawn as typed (docs/RELIABILITY.md §4).

Matplotlib parses text between two ``$`` as math (mathtext): a file named ``x$\\foo{$.h5``,
a ``--title`` or ``--label`` with such text, or a file's ``loss`` attribute, would be parsed
and raise ``ValueError`` (or draw something other than what was typed). Every string that
does not come from ncanalyze itself goes through :func:`literal` before it is drawn.
"""

from __future__ import annotations


def literal(text: object) -> str:
    """``text`` escaped so that matplotlib draws it literally (no mathtext)."""
    return str(text).replace("$", r"\$")
