"""What nacrith keeps on the local disk: where, what, how much, and removing it.

    $NACRITH_CACHE_DIR, else $XDG_CACHE_HOME/nacrith, else ~/.cache/nacrith:
      exact/SHA256-LAYOUT/   the exact engine's integer weights of one model file, made on
                             first use (SmolLM2: 241 MB, Gemma 3 270M: 905 MB); LAYOUT
                             names the release's layout, earlier ones are no longer read
      models/FILE.gguf       a named model joined from its chunk packages (Gemma 3 270M)
      fingerprints.json      model files' SHA-256, by path, size and modification time

Everything here is derived from installed files and is made again when needed, so any
of it can be deleted at any time (``nacrith cache --clear``), also while nacrith runs:
a process that mapped a file keeps it.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import shutil
import warnings

from .errors import CacheNotice

ENV = "NACRITH_CACHE_DIR"
#: The layout of the exact engine's folders this release reads and writes
#: (engines/exact/weights.py); a folder of another layout was left by another release.
EXACT_LAYOUT = "exact-3"


def root() -> pathlib.Path:
    """The folder nacrith keeps its derived files in (the module docstring's rule)."""
    if os.environ.get(ENV):
        return pathlib.Path(os.environ[ENV])
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base) / "nacrith"


@dataclasses.dataclass(frozen=True)
class Entry:
    path: pathlib.Path
    size: int  # bytes on disk
    what: str
    used: bool  # read by this release (False: left by an earlier one)
    model_sha256: str = ""  # the model file an exact engine's folder was made from (a prefix)
    ours: bool = True  # made by nacrith (False: something else put there, never removed)


def size_of(path: pathlib.Path) -> int:
    """Bytes in a file, or in every file below a folder (links not followed)."""
    if not path.is_dir() or path.is_symlink():
        return path.lstat().st_size
    return sum((pathlib.Path(d) / f).lstat().st_size for d, _, files in os.walk(path)
               for f in files)


def entries() -> list[Entry]:
    """Everything in the cache, largest first; what each is and whether this release reads it."""
    base, found = root(), []
    for path in sorted((base / "exact").glob("*")) if (base / "exact").is_dir() else []:
        if path.suffix in (".tmp", ".damaged"):  # another process is writing or replacing
            found.append(Entry(path, size_of(path), "being written by a nacrith process", True))
            continue
        sha, _, layout = path.name.partition("-")
        used = layout == EXACT_LAYOUT
        found.append(Entry(path, size_of(path), "weights for the exact engine"
                           + ("" if used else f" (layout {layout} of another release)"),
                           used, sha))
    for path in sorted((base / "models").glob("*.gguf")) if (base / "models").is_dir() else []:
        found.append(Entry(path, size_of(path), "a named model joined from its packages", True))
    if (base / "fingerprints.json").is_file():
        found.append(Entry(base / "fingerprints.json", size_of(base / "fingerprints.json"),
                           "model files' SHA-256, by path, size and time", True))
    known = {e.path for e in found} | {base / "exact", base / "models"}
    for path in sorted(base.glob("*")) if base.is_dir() else []:
        if path not in known:
            found.append(Entry(path, size_of(path), "not made by nacrith: left as it is", True,
                               ours=False))
    return sorted(found, key=lambda e: -e.size)


def remove(which: list[Entry]) -> int:
    """Delete ``which``; the bytes freed."""
    freed = 0
    for entry in which:
        if entry.path.is_dir() and not entry.path.is_symlink():
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            entry.path.unlink(missing_ok=True)
        freed += entry.size
    return freed


def removable(old_only: bool = False) -> list[Entry]:
    """What ``nacrith cache --clear`` (every entry of nacrith's own) or ``--prune`` (those
    of earlier releases) deletes."""
    return [e for e in entries() if e.ours and not (old_only and e.used)]


def mb(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"


def announce(folder: pathlib.Path, about: str):
    """Say once, when it is made, that ``folder`` (``about``) now holds data on disk: where,
    how large, and how to see, remove or move it (a CacheNotice: the command line prints it
    as a note, programs may filter it)."""
    old = sum(e.size for e in entries() if not e.used)
    warnings.warn(CacheNotice(
        f"{about} were written to {folder} ({mb(size_of(folder))}, once: every later run "
        f"reuses them); `nacrith cache` lists what nacrith keeps, `nacrith cache --clear` "
        f"removes it, {ENV} moves it"
        + (f"; earlier releases' caches there ({mb(old)}) are no longer read: "
           "`nacrith cache --prune` removes them" if old else "")), stacklevel=3)
