"""What the ``vqalab`` commands do with an option given twice.

argparse keeps the last value of a repeated option and drops the others without a word, so
``--baseline a --baseline b`` would quietly compare with ``b``. The commands' options that collect
values add up instead (``action="extend"`` or ``"append"``: ``--only``, ``--rev``, ``--question``),
and an option that holds one value is declared with ``Once``, which stops with a usage error.
"""

from __future__ import annotations

import argparse

# Where ``Once`` notes, on the namespace being parsed, which options it has already stored.
_GIVEN = "_once_given"


class Once(argparse.Action):
    """Store the option's value as argparse's default action does, but refuse a second value: a
    usage error names the option and both values."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values,
                 option_string: str | None = None) -> None:
        given = vars(namespace).setdefault(_GIVEN, set())
        if self.dest in given:
            parser.error(f"{option_string} was given twice ({getattr(namespace, self.dest)}, then {values}); "
                         f"it takes one value: give it once")
        given.add(self.dest)
        setattr(namespace, self.dest, values)
