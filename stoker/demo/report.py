"""The demo's outputs: the results table (rich) and the speedup chart (matplotlib)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.table import Table


@dataclass(frozen=True)
class Row:
    """One line of the table: a training run and its speedup over one worker."""

    mode: str
    workers: int
    wall_s: float
    speedup: float
    accuracy: float


def table(rows: list[Row], unavailable: dict[str, str], title: str) -> Table:
    """The results as a rich table; modes that could not run get a line saying why."""
    out = Table(title=title)
    out.add_column("mode")
    out.add_column("workers", justify="right")
    out.add_column("wall time", justify="right")
    out.add_column("speedup", justify="right")
    out.add_column("accuracy", justify="right")
    for row in rows:
        out.add_row(
            row.mode,
            str(row.workers),
            f"{row.wall_s:.2f} s",
            f"{row.speedup:.2f}x",
            f"{row.accuracy:.3f}",
        )
    for mode, reason in unavailable.items():
        out.add_row(mode, "-", "unavailable", "-", reason)
    return out


def chart(rows: list[Row], path: Path, title: str) -> Path:
    """Speedup against workers, one line per mode and the ideal line; a PNG file."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, safe in any thread
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    try:
        most = max(row.workers for row in rows)
        ax.plot([1, most], [1, most], ":", color="grey", label="ideal")
        for mode in dict.fromkeys(row.mode for row in rows):
            mine = [row for row in rows if row.mode == mode]
            ax.plot(
                [row.workers for row in mine],
                [row.speedup for row in mine],
                "o-",
                label=mode,
            )
        ax.set_xticks(sorted({row.workers for row in rows}))
        ax.set_xlabel("workers")
        fewest = min(row.workers for row in rows)
        ax.set_ylabel(f"speedup over {fewest} worker{'s' if fewest > 1 else ''}")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path
