"""What became of every file of a many-file run: its status, sizes and bits per byte."""

from __future__ import annotations

import dataclasses
import json

from ..pipeline.stats import bits_per_byte


@dataclasses.dataclass
class FileReport:
    """One input of a run and what became of it."""

    source: str
    target: str
    compressing: bool = True
    status: str = "ok"  # ok, failed or skipped
    bytes_in: int = 0
    bytes_out: int | None = 0
    blocks: int = 0
    workers: int = 0  # how many workers coded its blocks
    rerun_blocks: int = 0  # blocks Dask ran again after losing a worker
    error: str | None = None

    def fail(self, error: Exception):
        """This file failed, for ``error`` (named by its class)."""
        self.status, self.error = "failed", f"{type(error).__name__}: {error}"

    @property
    def bpb(self) -> float | None:
        """Bits per byte of the original: compressed size x 8 / original size."""
        if self.status != "ok":
            return None
        return _bpb(self.bytes_in, self.bytes_out, self.compressing)


def _bpb(bytes_in: int, bytes_out: int, compressing: bool) -> float | None:
    original, packed = (bytes_in, bytes_out) if compressing else (bytes_out, bytes_in)
    return bits_per_byte(original, packed)


@dataclasses.dataclass
class Report:
    """Every input of a run, with totals; ``ok`` unless a file failed."""

    files: list
    seconds: float = 0.0
    workers: int = 0
    models_loaded: int = 0  # by the workers at the end of the run (one each, if they coded)
    worker_peak_rss: int = 0  # bytes: the largest peak resident memory of a worker process

    @property
    def ok(self) -> bool:
        return all(f.status != "failed" for f in self.files)

    @property
    def failed(self) -> list:
        return [f for f in self.files if f.status == "failed"]

    def totals(self) -> dict:
        done = [f for f in self.files if f.status == "ok"]
        bytes_in = sum(f.bytes_in for f in done)
        bytes_out = sum(f.bytes_out for f in done)
        compressing = all(f.compressing for f in self.files)
        original = bytes_in if compressing else bytes_out
        return {"files": len(self.files), "ok": len(done), "failed": len(self.failed),
                "skipped": sum(f.status == "skipped" for f in self.files),
                "bytes_in": bytes_in, "bytes_out": bytes_out,
                "bpb": _bpb(bytes_in, bytes_out, compressing),
                "rerun_blocks": sum(f.rerun_blocks for f in self.files),
                "seconds": round(self.seconds, 3), "workers": self.workers,
                "models_loaded": self.models_loaded,
                "worker_peak_rss_mib": round(self.worker_peak_rss / 2**20, 1),
                "bytes_per_second": round(original / self.seconds, 1) if self.seconds else None}

    def as_dict(self) -> dict:
        return {"totals": self.totals(),
                "files": [{**dataclasses.asdict(f), "bpb": f.bpb} for f in self.files]}

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=1)

    def summary(self) -> str:
        lines = []
        for f in self.files:
            bpb = f", {f.bpb:.3f} bits/byte" if f.bpb is not None else ""
            what = (f"{f.bytes_in} -> {f.bytes_out} bytes{bpb}"
                    if f.status == "ok" else f.error if f.status == "failed" else "skipped")
            rerun = f" ({f.rerun_blocks} blocks re-run)" if f.rerun_blocks else ""
            lines.append(f"{f.source}: {f.status}: {what}{rerun} -> {f.target}")
        t = self.totals()
        bpb = f", {t['bpb']:.3f} bits/byte" if t["bpb"] is not None else ""
        lines.append(f"{t['ok']} of {t['files']} files ok ({t['failed']} failed, {t['skipped']} "
                     f"skipped): {t['bytes_in']} -> {t['bytes_out']} bytes{bpb}, "
                     f"{t['seconds']:.1f} s, {t['bytes_per_second'] or 0:.0f} bytes/s on "
                     f"{t['workers']} workers (peak {t['worker_peak_rss_mib']:.0f} MiB each)")
        return "\n".join(lines)
