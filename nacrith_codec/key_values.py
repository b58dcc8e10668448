"""``name=value`` lists as users write them (``NACRITH_OPTIONS``, ``--storage-option``).

One rule for every front end that reads them: each item has an ``=``, a name says
one thing once (a repeated name is an error, never "the last one wins"), and an
integer is ASCII digits only (``str.isdigit`` also takes ``١٢٣`` and ``²``).
"""

from __future__ import annotations


def parse(items, source: str) -> dict[str, str]:
    """``{name: value}`` of ``items`` (``"name=value"`` strings, stripped); ValueError
    naming ``source`` for an item without ``=``, an empty name or a repeated one."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name:
            raise ValueError(f"{source}: {item!r} is not NAME=VALUE")
        if name in out:
            raise ValueError(f"{source}: {name!r} is given twice ({out[name]!r} and "
                             f"{value!r}); give it once")
        out[name] = value
    return out


def is_integer(text: str) -> bool:
    """Whether ``text`` is a non-negative integer in ASCII digits."""
    return text.isascii() and text.isdigit()
