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
    out.add_column("test accuracy", justify="right")
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
    """Speedup against workers, one line per mode and the ideal line; a PNG file
    (drawn by ``stoker.bench``'s scaling chart)."""
    from stoker.bench.chart import draw_scaling

    lines: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        lines.setdefault(row.mode, []).append((row.workers, row.speedup))
    fewest = min(row.workers for row in rows)
    return draw_scaling(
        path,
        lines,
        xlabel="workers",
        ylabel=f"speedup over {fewest} worker{'s' if fewest > 1 else ''}",
        title=title,
    )
