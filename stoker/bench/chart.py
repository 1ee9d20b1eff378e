"""The sweep as a PNG: throughput (and speedup) against workers, one line per loader
and mode, next to the CPU seconds each setting burned.

A setting with ``workers="auto"`` has no worker count of its own: it is drawn as a
star at the pool it ended with (its median run), labelled ``auto``, with a dotted
horizontal line at its throughput. Settings with fixed workers and an "auto" mode
or queue are lines like the fixed ones (dash-dotted for ``use_multiprocessing=
"auto"``). The star answers "what did auto choose", the line
"which fixed settings did it beat", which is the question a reader brings to a sweep
with auto in it.

matplotlib is an optional extra (``stoker[charts]``), imported only when a chart is
drawn, with the non-interactive Agg backend so it works on a headless machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stoker import ConfigError
from stoker.bench.report import rows
from stoker.bench.sweep import SweepResult

_COLORS = {"stoker": "tab:blue", "keras": "tab:red", "torch": "tab:orange"}
_STYLES = {"thread": "-", "process": "--", "auto": "-."}
_MARKERS = "osD^v"
_AUTO_COLORS = ("tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ConfigError(
            "drawing the chart needs matplotlib: pip install 'stoker[charts]' "
            "(or pass --no-chart)"
        ) from None
    matplotlib.use("Agg")  # no display needed; must precede importing pyplot
    import matplotlib.pyplot as plt

    return plt


def draw(result: SweepResult, path: str | Path) -> Path:
    """Draw the sweep's chart as a PNG at ``path``.

    Args:
        result: a finished sweep.
        path: where to write the PNG (folders must exist).

    Returns:
        The path written.

    Raises:
        ConfigError: matplotlib is not installed.
    """
    plt = _pyplot()
    path = Path(path)
    table = rows(result)
    base = table[0]
    lines: dict[tuple[str, str, Any], list[dict[str, Any]]] = {}
    autos: list[dict[str, Any]] = []
    for r in table[1:]:
        if r["status"] != "ok":
            continue
        if r["workers"] == "auto":
            if isinstance(r["tuned_workers"], int):
                autos.append(r)
        else:
            lines.setdefault((r["loader"], r["mode"], r["queue"]), []).append(r)
    # str: "auto" may be among the queue sizes.
    queues = sorted({q for _, _, q in lines}, key=str)
    fig, (ax, ax_cpu) = plt.subplots(1, 2, figsize=(12, 4.8))
    try:
        for (loader, mode, queue), points in sorted(lines.items(), key=str):
            points.sort(key=lambda r: r["workers"])
            xs = [r["workers"] for r in points]
            ys = [r["batches_per_s"] for r in points]
            err = [
                [r["batches_per_s"] - r["batches_per_s_min"] for r in points],
                [r["batches_per_s_max"] - r["batches_per_s"] for r in points],
            ]
            label = f"{loader} {mode}" + (f" Q={queue}" if len(queues) > 1 else "")
            if mode == "auto":
                label = f"{loader} use_multiprocessing=auto" + label[len(loader) + 5 :]
            style = {
                "color": _COLORS.get(loader, "tab:green"),
                "linestyle": _STYLES.get(mode, ":"),
                "marker": _MARKERS[queues.index(queue) % len(_MARKERS)],
            }
            ax.errorbar(xs, ys, yerr=err, capsize=3, label=label, **style)
            cpu = [r["user_s"] + r["sys_s"] for r in points]
            ax_cpu.plot(xs, cpu, label=label, **style)
        for i, r in enumerate(autos):
            _draw_auto(ax, ax_cpu, r, _AUTO_COLORS[i % len(_AUTO_COLORS)])
        fixed = sorted({r["workers"] for pts in lines.values() for r in pts})
        # The ideal line spans the fixed points only: drawn out to a pool of 32 that
        # auto chose, it would squash every measured point to the bottom.
        workers = sorted({*fixed, *(r["tuned_workers"] for r in autos)})
        serial_bps = base["batches_per_s"]
        if serial_bps:
            ax.axhline(serial_bps, color="gray", linewidth=1, label="serial loop")
            ax.plot(
                fixed,
                [serial_bps * w for w in fixed],
                color="gray",
                linestyle=":",
                label="ideal (serial x workers)",
            )
            ax.secondary_yaxis(
                "right", functions=(lambda y: y / serial_bps, lambda s: s * serial_bps)
            ).set_ylabel("speedup vs serial")
            ax_cpu.axhline(
                base["user_s"] + base["sys_s"],
                color="gray",
                linewidth=1,
                label="serial",
            )
        w = result.workload
        ax.set_title(f"stoker bench {w.name}: throughput")
        ax.set_ylabel("batches / s (median, min-max bars)")
        ax_cpu.set_title("CPU cost (user + sys, whole process tree)")
        ax_cpu.set_ylabel("CPU seconds per run")
        for a in (ax, ax_cpu):
            if workers:
                a.set_xscale("log", base=2)
                a.set_xticks(workers, [str(x) for x in workers])
            a.set_xlabel("workers")
            a.set_ylim(bottom=0)
            a.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
        fig.suptitle(
            f"{w.description}; {w.params.get('batches')} batches per run, "
            f"median of {result.grid['repeat']}",
            fontsize="small",
        )
        fig.tight_layout()
        fig.savefig(path, format="png", dpi=100)
    finally:
        plt.close(fig)
    return path


def _draw_auto(ax: Any, ax_cpu: Any, r: dict[str, Any], color: str) -> None:
    """One auto row: a star at the pool it ended with, a line at its throughput."""
    x, y = r["tuned_workers"], r["batches_per_s"]
    label = (
        f"stoker auto ({r['mode']} W={r['workers']} Q={r['queue']}) "
        f"ended {r['tuned_mode']} W={x} Q={r['tuned_queue']}"
    )
    err = [[y - r["batches_per_s_min"]], [r["batches_per_s_max"] - y]]
    ax.errorbar([x], [y], yerr=err, capsize=3, color=color, marker="*",
                markersize=16, linestyle="none", label=label, zorder=5)  # fmt: skip
    ax.axhline(y, color=color, linestyle=":", linewidth=1)
    ax.annotate("auto", (x, y), textcoords="offset points", xytext=(8, 6),
                color=color, fontsize="small")  # fmt: skip
    ax_cpu.plot([x], [r["user_s"] + r["sys_s"]], color=color, marker="*",
                markersize=16, linestyle="none", label=label)  # fmt: skip


def draw_scaling(
    path: str | Path,
    lines: dict[str, list[tuple[float, float]]],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
) -> Path:
    """Speedup (y) against a count (x), one line per label, and the ideal line.

    The chart of the seed's write-up, drawn for ``stoker demo`` and any other
    speedup table: the ideal is y = x / (the smallest x), so 1 at the fewest workers.

    Raises:
        ConfigError: matplotlib is not installed.
    """
    plt = _pyplot()
    path = Path(path)
    xs_all = sorted({x for pts in lines.values() for x, _ in pts})
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    try:
        if xs_all:
            ax.plot(xs_all, [x / xs_all[0] for x in xs_all], ":", color="grey",
                    label="ideal")  # fmt: skip
        for label, points in lines.items():
            points = sorted(points)
            ax.plot([x for x, _ in points], [y for _, y in points], "o-", label=label)
        ax.set_xticks(xs_all)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path
