"""The dashboard's targets (issue 13): runs page, run data, page weight, concurrency.

Run:  .venv/bin/python benchmarks/ui.py            (about a minute; needs chromium)
      .venv/bin/python benchmarks/ui.py --runs 10000 --points 1000000 --repeat 15

Last run (2026-11-29, 2 shared vCPUs, load average 5): runs page 5-21 ms server
time over HTTP, 160 ms to the table on screen in Chromium; 1,000,000-point run data
163 ms over HTTP, 1,998 values sent, global min and max included; runs page 44 KiB
with its JS; 8 writers x 50,000 points while polled: 0 locked, 0 lost. Full output
in docs/benchmarks.md, "Dashboard (issue 13)".

What it measures, against the issue's targets:
1. a store with 10,000 runs: server time for runs pages over HTTP (first page, a
   middle page, sorted by duration, a text search), median of ``--repeat``; and in
   headless Chromium, navigation start to the table on screen;
2. a run with one metric of 1,000,000 points: the run page's data endpoint
   (``/api/runs/<id>/charts``), and the values sent per series (min, max, last per
   bucket), and that the global min and max are among them;
3. the runs page's weight: its HTML plus every script and stylesheet it loads;
4. 8 processes logging 10,000 points each into one store while the dashboard is
   polled every 0.5 s: no "database is locked", no failed poll, no lost point.
The server is uvicorn on 127.0.0.1 in this process; the machine is shared, so
compare within one run.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import stoker.track.api as T
from stoker.ui import Server, UIOptions
from tests.ui_stores import big_series, many_runs

_CHILD = """
import sys, time
import stoker.track.api as T

worker, points = int(sys.argv[2]), int(sys.argv[3])
with T.track(f"worker-{worker}", params={"worker": worker}, store=sys.argv[1]) as run:
    for i in range(points):
        run.log(step=i, x=float(i))
        if i % 100 == 99:
            time.sleep(0.01)
"""


def get(url: str) -> tuple[float, bytes, int]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as r:
        body = r.read()
        return (time.perf_counter() - started) * 1000, body, r.status


def median_ms(url: str, repeat: int) -> float:
    get(url)  # warm: the first request also opens Python's caches
    return statistics.median(get(url)[0] for _ in range(repeat))


def runs_page(base: str, repeat: int) -> None:
    print("\n1. runs page, 10,000 runs (median ms over HTTP, server in-process)")
    print("| page | ms | bytes |\n|---|---:|---:|")
    for label, path in (
        ("first page", ""),
        ("page 100", "?page=100"),
        ("sorted by duration", "?sort=duration&desc=1"),
        ("search 'run-99'", "?q=run-99"),
        ("param workers=3", "?param=workers%3D3"),
        ("JSON /api/runs", "api/runs"),
    ):
        ms = median_ms(base + path, repeat)
        print(f"| {label} | {ms:.1f} | {len(get(base + path)[1]):,} |")


def browser(base: str, repeat: int) -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("\n(playwright missing: browser timings skipped)")
        return
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--headless", "--no-sandbox", "--disable-gpu"],
        )
        page = b.new_page()
        times, weight = [], 0
        sizes: dict[str, int] = {}

        def seen(response) -> None:
            with contextlib.suppress(Exception):  # redirects have no body
                sizes[response.url] = len(response.body())

        page.on("response", seen)
        for _ in range(repeat):
            page.goto("about:blank")
            started = time.perf_counter()
            page.goto(base)
            page.wait_for_selector("#runs-table tbody tr")
            times.append((time.perf_counter() - started) * 1000)
        weight = sum(sizes.values())
        b.close()
    print(
        "\n   browser: navigation to table on screen, median "
        f"{statistics.median(times):.0f} ms (max {max(times):.0f} ms)"
    )
    print("\n3. runs page weight (HTML + everything it loads):")
    for url, n in sorted(sizes.items()):
        print(f"   {n:>8,} B  {url.removeprefix(base) or '/'}")
    print(f"   {weight:>8,} B  total ({weight / 1024:.0f} KiB)")


def run_data(base: str, run_id: int, store: Path, repeat: int) -> None:
    url = f"{base}api/runs/{run_id}/charts"
    ms = median_ms(url, repeat)
    import json

    data = json.loads(get(url)[1])
    s = data["metrics"]["loss"]
    sent = len(s["min"]) + len(s["max"]) + len(s["last"])
    lib = statistics.median(
        _timed(lambda: T.series(run_id, "loss", store=store)) for _ in range(repeat)
    )
    print("\n2. run with 1,000,000 points in one metric")
    print(f"   /api/runs/{run_id}/charts: median {ms:.0f} ms over HTTP")
    print(f"   stoker.track.series alone: median {lib:.0f} ms")
    print(
        f"   values sent: {sent} ({len(s['step'])} buckets x min/max/last) of "
        f"{s['count']:,} points; global min {s['global_min']} in mins: "
        f"{s['global_min'] in s['min']}; global max {s['global_max']} in maxes: "
        f"{s['global_max'] in s['max']}"
    )


def run_page_in_browser(base: str, run_id: int, repeat: int) -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--headless", "--no-sandbox", "--disable-gpu"],
        )
        page = b.new_page()
        times = []
        for _ in range(repeat):
            page.goto("about:blank")
            started = time.perf_counter()
            page.goto(f"{base}runs/{run_id}")
            page.wait_for_selector("#metric-charts canvas")
            times.append((time.perf_counter() - started) * 1000)
        b.close()
    print(
        f"   run page in Chromium, navigation to the chart drawn: median "
        f"{statistics.median(times):.0f} ms (max {max(times):.0f} ms)"
    )


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def concurrency(tmp: Path, points: int) -> None:
    store = tmp / "shared.db"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(store), str(w), str(points)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(8)
    ]
    while not store.exists():
        time.sleep(0.05)
    server = Server(UIOptions(store=store, port=0))
    base = server.start()
    stop, polls, failures = threading.Event(), [0], []

    def poll() -> None:
        while not stop.is_set():
            for path in ("api/runs", *(f"api/runs/{i}/charts" for i in range(1, 9))):
                try:
                    get(base + path)
                except Exception as e:  # 503 from a locked store, or a 404 early
                    if "404" not in str(e):
                        failures.append(str(e))
            polls[0] += 1
            stop.wait(0.5)

    poller = threading.Thread(target=poll)
    poller.start()
    started = time.perf_counter()
    errors = [p.communicate(timeout=300)[1] for p in procs]
    took = time.perf_counter() - started
    stop.set()
    poller.join(timeout=30)
    server.stop()
    lost = 0
    for r in T.list_runs(store):
        lost += points - T.get_run(r["id"], store)["metrics"]["x"]["count"]
    locked = sum("locked" in e for e in errors) + sum("locked" in f for f in failures)
    print(f"\n4. 8 processes x {points:,} points with the UI polled every 0.5 s")
    print(
        f"   {took:.1f} s, {polls[0]} poll rounds (9 requests each), "
        f"failed polls {len(failures)}, child stderr non-empty "
        f"{sum(bool(e) for e in errors)}, 'database is locked' {locked}, "
        f"lost points {lost}, exit codes {sorted({p.returncode for p in procs})}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--writer-points", type=int, default=50_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        many = tmp / "many.db"
        t = time.perf_counter()
        many_runs(many, args.runs)
        print(f"store with {args.runs:,} runs built in {time.perf_counter() - t:.1f} s")
        server = Server(UIOptions(store=many, port=0))
        base = server.start()
        try:
            runs_page(base, args.repeat)
            browser(base, min(args.repeat, 10))
        finally:
            server.stop()
        big = tmp / "big.db"
        run_id = big_series(big, args.points)
        server = Server(UIOptions(store=big, port=0))
        base = server.start()
        try:
            run_data(base, run_id, big, args.repeat)
            run_page_in_browser(base, run_id, min(args.repeat, 5))
        finally:
            server.stop()
        concurrency(tmp, args.writer_points)


if __name__ == "__main__":
    main()
