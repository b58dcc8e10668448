"""``nacrith bench --chart FILE.png``: the bench table as a picture.

Two panels side by side, one bar per codec: bits per byte over all the files
measured (smaller is better) and compression speed in input bytes per
second on a log scale (nacrith is thousands of times slower than the
classical codecs; a linear axis would hide one side or the other).
Needs matplotlib (``pip install "nacrith-codec[chart]"``).
"""

from __future__ import annotations

from ..pipeline.stats import bits_per_byte


def draw(rows, path: str, title: str = ""):
    """rows: dicts with codec, original, size, compress_s (one per codec and file)."""
    try:
        import matplotlib
    except ImportError as exc:
        raise SystemExit('nacrith bench --chart needs matplotlib: '
                         'pip install "nacrith-codec[chart]"') from exc
    matplotlib.use("Agg")
    from matplotlib import pyplot, ticker

    totals: dict[str, list[float]] = {}
    for row in rows:
        t = totals.setdefault(row["codec"], [0, 0, 0.0])
        t[0] += row["original"]
        t[1] += row["size"]
        t[2] += row["compress_s"]
    names = list(totals)
    bpb = [bits_per_byte(original, size) or 0.0 for original, size, _ in totals.values()]
    speed = [original / max(seconds, 1e-9) for original, _, seconds in totals.values()]
    colors = ["tab:red" if name.startswith("nacrith") else "tab:gray" for name in names]

    fig, (left, right) = pyplot.subplots(1, 2, figsize=(10, 0.5 * len(names) + 1.6),
                                         sharey=True, layout="constrained")
    left.barh(names, bpb, color=colors)
    left.set_xlabel("bits per byte (smaller is better)")
    left.invert_yaxis()
    left.set_xlim(0, 1.18 * max(bpb))
    for y, value in enumerate(bpb):
        left.annotate(f"{value:.3f}", (value, y), xytext=(3, 0), textcoords="offset points",
                      va="center", fontsize=8)
    units = ticker.EngFormatter(unit="B/s", places=0)
    right.barh(names, speed, color=colors, left=1.0)
    right.set_xscale("log")
    right.set_xlim(1.0, 30 * max(speed))
    right.xaxis.set_major_locator(ticker.LogLocator(base=100))
    right.xaxis.set_major_formatter(ticker.EngFormatter(unit="B/s"))
    right.xaxis.set_minor_formatter(ticker.NullFormatter())
    right.set_xlabel("compression speed (log scale)")
    for y, value in enumerate(speed):
        right.annotate(units(value), (value, y), xytext=(3, 0), textcoords="offset points",
                       va="center", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=120)
    pyplot.close(fig)
