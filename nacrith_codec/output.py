"""Outputs that are complete or absent: the one rule for writing what a user keeps.

``write_all`` writes every byte or raises: a raw file (``open(path, "wb", buffering=0)``,
an unbuffered standard output, a pipe) may take fewer bytes than it was given and say
so only in its return value, and a full disk shows first as such a short write.

``Output`` is a file that appears under its name only once everything was written:
the bytes go to a hidden temporary file beside the target (``.nacrith-NAME.XXXXXXXX.part``)
that is renamed when complete, and removed when anything fails.  On an object store
whose files honour fsspec's ``autocommit=False`` (a multipart upload completed on
success) the store's own commit does it; within a transaction of the target
filesystem, the transaction decides.  Without ``overwrite`` an output is published only
if its name is still free at that moment (two runs racing for one name: the second
fails, nothing is overwritten); with a ``precondition`` (an append: the target must still
hold what was read) the check and the publishing happen under one lock, so of two writers
racing in one process the second fails loudly instead of undoing the first.  The command
line, ``nacrith 7z``, the Dask runner and the ``nacrith::`` filesystem all publish through
it.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import stat
import threading


def write_all(out, data) -> None:
    """Write every byte of ``data`` to ``out``, or raise: a raw file's short write is
    retried, and one that writes nothing is an error."""
    view = memoryview(data).cast("B")
    while view:
        n = out.write(view)
        if n is None:
            if isinstance(out, io.RawIOBase):  # non-blocking, and could take nothing now
                raise OSError("the output would block; nothing was written")
            return  # a file-like object that does not count (many outside io): it took all
        if n <= 0:
            raise OSError(f"the output took none of {len(view)} bytes (is the disk full?)")
        view = view[n:]


#: The longest file name most file systems take (NAME_MAX), in bytes.
NAME_MAX = 255
_HIDDEN = len(".nacrith-.01234567.part")  # what the hidden name adds to the target's


def temporary_name(target: str, sep: str = "/") -> str:
    """The hidden name beside ``target`` that its bytes are written under first: the
    target's name, shortened where needed so that the hidden one stays within NAME_MAX
    bytes (a name that fits a file system fits there hidden too)."""
    folder, _, name = target.rpartition(sep)
    fits = name.encode("utf-8", "surrogateescape")[:NAME_MAX - _HIDDEN]
    name = fits.decode("utf-8", "ignore")  # a character cut in two is left out
    hidden = f".nacrith-{name}.{secrets.token_hex(4)}.part"
    return f"{folder}{sep}{hidden}" if folder or target.startswith(sep) else hidden


#: Object stores whose files honour ``autocommit=False``: a multipart upload, completed by
#: ``commit()`` and aborted by ``discard()`` (a rename there would copy the object).
_STORES = {"s3", "s3a", "gs", "gcs", "abfs", "az", "adl"}


def _local(fs) -> bool:
    return fs is None or "file" in protocols(fs) or "local" in protocols(fs)


def protocols(fs) -> tuple:
    """The protocols of an fsspec filesystem, as a tuple."""
    return fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)


class Output(io.RawIOBase):
    """A writable file published at ``target`` by ``commit()`` and removed by
    ``discard()``; as a context manager, committed when its block ends cleanly.

    ``fs``: an fsspec filesystem (None: this machine's).  ``like``: an ``os.stat_result``
    whose mode and times a local output takes (the input's, as gzip, xz and zstd keep
    them).  ``overwrite``: replace an existing target instead of failing.
    ``precondition``: called just before publishing, under a lock all outputs share; it
    raises to refuse (the target changed since it was read).  ``update``: a local
    temporary file that opens for reading too (``file``), for a library that updates
    what it writes in place (py7zr appending to an archive copied there first).
    """

    def __init__(self, target: str, fs=None, *, overwrite: bool = False,
                 like: os.stat_result | None = None, exists_hint: str = "",
                 precondition=None, update: bool = False):
        super().__init__()
        self.target, self.fs, self.overwrite, self.like = target, fs, overwrite, like
        self._hint, self._precondition = exists_hint, precondition
        self.size = 0
        self._done = False
        if _local(fs):
            self.target = target = fs._strip_protocol(target) if fs else target
            if os.path.isdir(target):
                raise IsADirectoryError(f"{target} is a directory; name an output file")
            _refuse_special(target)
            self._check_free()
            if fs is not None:  # a runner's output tree (the command line makes no folders)
                os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
            self.temp = temporary_name(target, os.sep)
            self.file = open(self.temp, "x+b" if update else "xb")
            self._commit = self._commit_local
        else:
            self._open_remote(fs, target)

    def _open_remote(self, fs, target: str):
        self._check_free()
        folder = target.rpartition("/")[0]
        if folder:
            fs.makedirs(folder, exist_ok=True)
        if getattr(fs, "_intrans", False):  # the target's transaction commits or discards
            self.temp, self.file, self._commit = None, fs.open(target, "wb"), self._close_file
            return
        if _STORES & set(protocols(fs)):  # the store publishes the upload on commit
            self.temp, self._commit = None, self._commit_store
            self.file = fs.open(target, "wb", autocommit=False)
            return
        self.temp = temporary_name(target)
        self.file = fs.open(self.temp, "wb")
        self._commit = self._commit_rename

    def _exists(self) -> bool:
        return os.path.lexists(self.target) if _local(self.fs) else self.fs.exists(self.target)

    def _check_free(self):
        if not self.overwrite and self._exists():
            raise FileExistsError(f"{self.target} already exists{self._hint}")

    def writable(self):
        return True

    def write(self, data) -> int:
        write_all(self.file, data)
        n = memoryview(data).nbytes
        self.size += n
        return n

    def fileno(self):
        return self.file.fileno()

    def _close_file(self):
        self.file.close()

    # -- publishing
    def commit(self):
        """Publish the output under its name (once); if that fails, nothing is left."""
        self._end(self._checked_commit)

    def discard(self):
        """Leave nothing behind (after a failure: also called by ``close`` before commit)."""
        self._end(self._remove)

    def _end(self, action):
        if self._done:
            return
        self._done = True
        try:
            action()
        except BaseException:
            self._remove()
            raise
        finally:
            super().close()

    def _checked_commit(self):
        if self._precondition is None and (self.overwrite or _local(self.fs)):
            self._commit()  # nothing to check, or a check the rename makes itself (os.link)
            return
        with _PUBLISHING:  # a check, then a rename: one writer at a time in this process
            if self._precondition is not None:
                self._precondition()
            self._commit()

    def _commit_local(self):
        f = self.file
        f.flush()
        if self.like is not None:
            _copy_metadata(f.fileno(), self.like)
        os.fsync(f.fileno())
        f.close()
        _publish(self.temp, self.target, self.overwrite)

    def _commit_store(self):
        self.file.close()  # the last part uploaded; the object appears only now:
        self.file.commit()

    def _commit_rename(self):
        self.file.close()
        if not self.overwrite and self.fs.exists(self.target):
            raise _appeared(self.target)
        self.fs.mv(self.temp, self.target)

    def _remove(self):
        with contextlib.suppress(Exception):
            self.file.close()
        with contextlib.suppress(Exception):
            if self.temp is None:  # a store's upload or a transaction's file
                if hasattr(self.file, "discard"):
                    self.file.discard()
            elif _local(self.fs):
                os.unlink(self.temp)
            else:
                self.fs.rm(self.temp)

    def close(self):
        """Closing without ``commit()`` discards the output."""
        self.discard()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
        else:
            self.discard()


#: Held while an output checks its precondition and publishes (see the module's docstring).
_PUBLISHING = threading.Lock()


def special_file(path: str) -> os.stat_result | None:
    """The status of ``path`` when it is a device, FIFO or socket (None otherwise: a
    regular file, a link, a directory, or nothing)."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return None if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode) or stat.S_ISDIR(
        st.st_mode) else st


def _refuse_special(path: str):
    """An output is never renamed over a device, FIFO or socket (with ``overwrite``, that
    would replace ``/dev/null`` for everyone): such a target is written into by its caller
    (the command line) or refused here."""
    if special_file(path) is not None:
        raise FileExistsError(f"{path} is not a regular file (a device, FIFO or socket); it "
                              "was left as it is")


def _appeared(path: str) -> FileExistsError:
    return FileExistsError(f"{path} appeared while it was being written (another run?); "
                           "it was left as it is")


def _publish(tmp: str, path: str, overwrite: bool):
    """Rename ``tmp`` to ``path``; without ``overwrite`` only if ``path`` is still free."""
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # atomic: fails if the name appeared meanwhile
    except FileExistsError:
        raise _appeared(path) from None
    except OSError:  # a file system without hard links: check, then rename
        if os.path.lexists(path):
            raise _appeared(path) from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def _copy_metadata(fd: int, like: os.stat_result):
    """Permission bits, times and (where allowed) group of ``like`` onto ``fd``."""
    with contextlib.suppress(OSError):
        os.fchown(fd, -1, like.st_gid)
    os.fchmod(fd, like.st_mode & 0o7777)
    os.utime(fd, ns=(like.st_atime_ns, like.st_mtime_ns))
