"""Which model and environment a coder has, and the one check that they are the ones needed.

A stream names its model by the SHA-256 of the file (version 6: its first 8 bytes)
and, for the llama.cpp engine, the environment its logits depend on.  A decoder
checks its own against the stream's header, a Dask worker against the run's:
both through ``require``.
"""

from __future__ import annotations

import dataclasses
import os

from ..errors import EnvironmentMismatchError, ModelMismatchError
from .model_file import fingerprint, named_by_sha256, recorded_name, resolve_model_path


@dataclasses.dataclass(frozen=True)
class Identity:
    """A model file (the SHA-256 of its bytes, in hex, and its name) and, for the llama.cpp
    engine, the environment its logits depend on ({} for the exact engine)."""

    sha256: str
    model_name: str
    env: dict

    def require(self, needed: "Identity", what: str, where: str = ""):
        """ModelMismatchError unless this is ``needed``'s model (``needed.sha256`` may be a
        prefix, as version 6 headers hold), EnvironmentMismatchError unless, for a
        llama.cpp stream, its environment; ``what`` names who needs it, ``where`` the
        coder checked (a file, a worker), in the message."""
        if not self.sha256.startswith(needed.sha256):
            name = recorded_name(needed.model_name, needed.sha256)
            named = named_by_sha256(needed.sha256)
            how = (f"pass model={named.name!r} or --model {named.name} (installed by "
                   f"`pip install \"nacrith-codec[{named.extra}]\"`)" if named else
                   "pass that file as model=..., --model or NACRITH_MODEL")
            raise ModelMismatchError(
                f"{what} needs the model {name!r} (sha256 {needed.sha256}...), but "
                f"{where or 'the model given'} is {self.model_name} (sha256 {self.sha256})"
                f"; {how}")
        if self.env != needed.env:
            raise EnvironmentMismatchError(
                f"{where or 'this machine'} runs in another environment than {what}'s "
                f"({differences(needed.env, self.env)}): its blocks would not decode alike")


def differences(writer: dict, here: dict) -> str:
    """What differs between the environment a stream needs (``writer``) and one that codes
    it (``here``), entry by entry; "" when nothing does."""
    differ = sorted(k for k in set(writer) | set(here) if writer.get(k) != here.get(k))
    return "; ".join(f"{k}: writer {writer.get(k)!r}, here {here.get(k)!r}" for k in differ)


def identify(model=None, n_gpu_layers: int = 0, engine: str = "exact") -> Identity:
    """The identity of ``model`` (a path, or None: the default model) on this machine; the
    environment only for the llama.cpp engine, whose logits depend on it."""
    from . import environment
    path = resolve_model_path(model)
    return Identity(fingerprint(path), os.path.basename(path),
                    environment(n_gpu_layers) if engine == "llama.cpp" else {})
