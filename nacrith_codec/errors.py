"""The exceptions nacrith-codec raises.

Every failure to decode is one of these, never wrong bytes: callers can catch
``NacrithError`` for all of them or a subclass for one cause.
"""


class NacrithError(Exception):
    """Base class of every error raised by nacrith-codec."""


class FormatError(NacrithError):
    """The data is not a nacrith stream, or one of an unsupported version."""


class CorruptError(NacrithError):
    """The stream is damaged: a checksum or a structural check failed."""


class TruncatedError(CorruptError, EOFError):
    """The stream ends before its end marker (an ``EOFError`` as in lzma/bz2)."""


class ModelMismatchError(NacrithError):
    """The stream was made with another model than the one given to decode it."""


class VerifyError(NacrithError):
    """``verify=True``: the stream just written does not decode to its input.

    The input is intact; the stream must not be kept.  This is a bug (or a
    machine fault) to report, never expected.
    """


class MemoryLimitError(NacrithError):
    """Decoding the stream needs more memory than the limit allows (``memlimit``, as
    lzma's), or the memory it needs could not be allocated; nothing was decoded.  The
    message says how much it needs and how to raise the limit."""


class ModelNotFoundError(NacrithError):
    """No model file could be found or loaded."""


class EnvironmentMismatchError(CorruptError):
    """Decoding failed, and the stream was written by a different llama.cpp build.

    Neural decoding reproduces the encoder's predictions only with the same
    model, the same llama.cpp build and the same backend; the message names
    what differs between the writer's environment and this one.
    """


class ConflictError(NacrithError):
    """Another writer changed a file while this one was adding to it (an append through
    the ``nacrith::`` filesystem, ``nacrith 7z a`` on an archive): this addition was not
    published, and the other writer's file is left as it is.  Add again."""


class CacheNotice(UserWarning):
    """nacrith has just kept data derived from a model file in the user's cache (the exact
    engine's integer weights, on first use of a model): where, how large, and how to
    remove or move it (cache.py).  Said once, when the data is made."""


class CacheWarning(UserWarning):
    """Data nacrith derives from a model file and keeps in the user's cache (the exact
    engine's integer weights) did not match the digests written with it, and was rebuilt
    from the model file.  Nothing written is affected: the damaged data was never used."""
