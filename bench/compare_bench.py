"""Comparing 1,000 runs of 1,000 points each: the compare routes' latency and the page's draw.

The read model is filled through the real fold (``bench/compare_fill.py``: a sweep of RUNS
trials, POINTS step reports each, plus their epoch reports). Then, on the same file:

- ``GET /api/compare?sweep=`` and ``GET /api/compare/series?sweep=&points=`` (the points the
  dashboard asks for at that many runs) through the real app in-process (ASGI, no network),
  against the raw SQL reads each stands on (the same rows fetched, nothing shaped or thinned),
  rounds alternating; wall and CPU clock per request.
- the dashboard's compare page in headless Chromium, served by uvicorn over the same file:
  from the navigation's start to every chart, the table and the parallel coordinates drawn
  (``window.sparkCompare.drawn_ms``, set on the next frame after the page drew them), per load.

Run it niced: ``nice -n 19 .venv/bin/python bench/compare_bench.py`` (``--smoke`` is small).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from benchkit import emit, percentile  # noqa: E402
from compare_fill import fill, serving  # noqa: E402

from sparktrainer.api.app import create_app  # noqa: E402
from sparktrainer.registry import store  # noqa: E402
from sparktrainer.settings import Settings  # noqa: E402

SWEEP = "bench"
GOAL_ROUTE_P99_MS = 200.0
GOAL_PAGE_S = 2.0
COMPARE_JS = ROOT / "sparktrainer" / "api" / "static" / "compare.js"


def page_points(runs: int) -> int:
    """The points per curve the compare page asks for at ``runs`` runs (compare.js's rule,
    read from the file: about POINTS_PER_CHART points per chart, 20 to 200 a run)."""
    found = re.search(r"const POINTS_PER_CHART = (\d+);", COMPARE_JS.read_text())
    assert found, f"POINTS_PER_CHART not found in {COMPARE_JS}"
    return max(20, min(200, int(found.group(1)) // max(1, runs)))


def filled(db: Path, runs: int, points: int) -> float:
    """Fold the sweep into ``db``, or reuse the file an earlier run filled (if the read model's
    schema has not changed since: connecting drops stale tables); the fill's seconds."""
    marker, size = db.with_suffix(".done"), f"{runs}x{points}"
    conn = store.connect(db)
    try:
        kept = conn.execute("SELECT count(*) FROM trials WHERE sweep_id = ?", (SWEEP,)).fetchone()
        if kept[0] == runs and marker.exists() and marker.read_text().split()[0] == size:
            return float(marker.read_text().split()[1])
    finally:
        conn.close()
    for stale in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        stale.unlink(missing_ok=True)
    conn = store.connect(db)
    t0 = time.perf_counter()
    fill(conn, SWEEP, runs, points)
    conn.close()
    seconds = time.perf_counter() - t0
    marker.write_text(f"{size} {seconds:.1f}")
    return seconds


def _ids(conn: sqlite3.Connection) -> str:
    rows = conn.execute("SELECT job_id FROM trials WHERE sweep_id = ? ORDER BY trial", (SWEEP,))
    return json.dumps([r[0] for r in rows])


IDS = "SELECT value FROM json_each(?)"
RAW = {  # the rows each route reads, fetched and nothing more
    "compare": [
        f"SELECT * FROM jobs WHERE job_id IN ({IDS})",
        f"SELECT job_id, config FROM job_specs WHERE job_id IN ({IDS})",
        f"SELECT * FROM metric_series WHERE job_id IN ({IDS})",
        f"SELECT job_id, data FROM models WHERE job_id IN ({IDS})",
    ],
    "series": [
        f"SELECT job_id, series, step, epoch, value FROM metric_points WHERE job_id IN ({IDS})"
    ],
}


def _raw(db: Path, route: str) -> None:
    conn = sqlite3.connect(db)
    try:
        ids = _ids(conn)
        for sql in RAW[route]:
            conn.execute(sql, (ids,)).fetchall()
    finally:
        conn.close()


def _clocked(times: dict[str, list[float]], side: str, fn: Any) -> Any:
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    times[f"{side}_wall_ms"].append((time.perf_counter() - w) * 1000)
    times[f"{side}_cpu_ms"].append((time.process_time() - c) * 1000)
    return out


async def routes(db: Path, runs: int, requests: int) -> dict[str, Any]:
    """p50/p99 (wall, CPU) of each route and of its raw read, rounds alternating."""
    app = create_app(Settings(), db_path=db)
    paths = {"compare": f"/api/compare?sweep={SWEEP}",
             "series": f"/api/compare/series?sweep={SWEEP}&points={page_points(runs)}"}  # fmt: skip
    out: dict[str, Any] = {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            for route, path in paths.items():
                times: dict[str, list[float]] = {k: [] for k in (
                    "route_wall_ms", "route_cpu_ms", "raw_wall_ms", "raw_cpu_ms")}  # fmt: skip
                r = await client.get(path)  # warm: the page cache, the app's first request
                assert r.status_code == 200, r.text[:300]
                body = r.json()
                for _ in range(requests):
                    w, c = time.perf_counter(), time.process_time()
                    r = await client.get(path)
                    times["route_wall_ms"].append((time.perf_counter() - w) * 1000)
                    times["route_cpu_ms"].append((time.process_time() - c) * 1000)
                    assert r.status_code == 200
                    _clocked(times, "raw", lambda route=route: _raw(db, route))
                out[route] = {
                    "path": path,
                    "answer_bytes": len(r.content),
                    "runs": len(body["runs"]),
                    **{f"{k}_p50": round(percentile(v, 0.5), 2) for k, v in times.items()},
                    **{f"{k}_p99": round(percentile(v, 0.99), 2) for k, v in times.items()},
                    "requests": requests,
                }
    return out


def page(db: Path, loads: int) -> dict[str, Any]:
    """Navigation start -> the compare page drawn, per load (a fresh document each time)."""
    from tests.integration.observe_kit import chromium, screenshot, wait_for

    app = create_app(Settings(), db_path=db)
    drawn: list[float] = []
    with serving(app) as url:
        browser = chromium()
        try:
            for n in range(loads + 1):  # the first load warms the file cache and the app
                browser.get("about:blank")
                browser.get(f"{url}#/compare?sweep={SWEEP}")
                ms = wait_for(browser, "window.sparkCompare?.drawn_ms", 120)
                if n:
                    drawn.append(ms / 1000)
            facts = browser.execute_script(
                "const c = window.sparkCompare; return {charts: Object.keys(c.charts).length,"
                " lines: Object.values(c.charts).reduce((s, e) => s + e.runs.length, 0),"
                " rows: document.querySelectorAll('#compare-runs tbody tr').length,"
                " parallel: c.parallel.lines.length};"
            )
            screenshot(browser, "compare-bench")
        finally:
            browser.quit()
    p50, worst = round(percentile(drawn, 0.5), 3), round(max(drawn), 3)
    return {"loads": loads, "drawn_s": [round(s, 3) for s in drawn], "p50_s": p50,
            "max_s": worst, **facts}  # fmt: skip


def report(result: dict[str, Any]) -> str:
    """The result as the Markdown table committed under bench/results/."""
    c, s, p = result["routes"]["compare"], result["routes"]["series"], result["page"]
    load = result["load_average"]
    rows = [
        ("GET /api/compare?sweep= (one row per run: differing params, final/best per series)", c),
        (f"GET /api/compare/series?sweep=&points={page_points(result['runs'])} (every run's "
         "curves, thinned, one answer)", s),
    ]  # fmt: skip
    lines = [
        f"# Compare {result['runs']:,} runs of {result['points']:,} points, {result['at']}",
        "",
        f"`{result['command']}` on {os.cpu_count()} CPUs (shared with other helpers), Python "
        f"{platform.python_version()}; 1-minute load average {load[0]:.2f} before, "
        f"{load[1]:.2f} after. Read model filled through the real fold in "
        f"{result['fill_s']:.0f} s ({result['db_bytes'] / 1e6:.0f} MB); routes through the real "
        "app in-process (ASGI), the raw side fetching the same rows with plain SQL, alternating; "
        "the page in headless Chromium over uvicorn on the same file.",
        "",
        "| benchmark | measured | baseline (same run) | ratio or percentile | goal | met? |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in rows:
        ratio = r["route_wall_ms_p50"] / max(r["raw_wall_ms_p50"], 1e-9)
        lines.append(
            f"| {name}, {r['requests']} requests, {r['answer_bytes'] / 1e6:.2f} MB | p50 "
            f"{r['route_wall_ms_p50']:g} ms wall ({r['route_cpu_ms_p50']:g} ms CPU), p99 "
            f"{r['route_wall_ms_p99']:g} ms ({r['route_cpu_ms_p99']:g} ms CPU) | raw SQL p50 "
            f"{r['raw_wall_ms_p50']:g} ms, p99 {r['raw_wall_ms_p99']:g} ms | {ratio:.2f}x raw "
            f"at p50 | p99 <= {GOAL_ROUTE_P99_MS:g} ms | "
            f"{'yes' if r['route_wall_ms_p99'] <= GOAL_ROUTE_P99_MS else '**no**'} |"
        )
    lines.append(
        f"| compare page drawn ({p['charts']} charts, {p['lines']:,} lines, {p['rows']:,} table "
        f"rows, {p['parallel']:,} parallel lines), {p['loads']} loads | p50 {p['p50_s']:g} s, "
        f"max {p['max_s']:g} s | - | navigation start -> drawn | <= {GOAL_PAGE_S:g} s | "
        f"{'yes' if p['max_s'] <= GOAL_PAGE_S else '**no**'} |"
    )
    if s["route_wall_ms_p99"] > GOAL_ROUTE_P99_MS:
        lines += ["", (
            "- Missed: the series route's p99. Cause: one index seek per point answered (a "
            "run's long series at evenly spaced steps, `registry/compare.py` `_THINNED`: "
            f"{s['runs']:,} runs x {page_points(result['runs'])} points) and the answer's "
            f"{s['answer_bytes'] / 1e6:.1f} MB of JSON shaped in Python; CPU p50 "
            f"{s['route_cpu_ms_p50']:g} ms, the rest of the wall clock the machine's load. "
            "Scanning every kept point instead (the query before) took over a second."
        )]  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--db", type=Path, default=Path(tempfile.gettempdir()) / "compare-bench.db")
    parser.add_argument("--smoke", action="store_true", help="20 runs of 100 points, 10 requests")
    parser.add_argument("--out", type=Path, help="also write the result as OUT.json and OUT.md")
    args = parser.parse_args()
    if args.smoke:
        args.runs, args.points, args.requests, args.loads = 20, 100, 10, 1
        args.db = args.db.with_name("compare-bench-smoke.db")
    load_before = os.getloadavg()[0]
    fill_s = filled(args.db, args.runs, args.points)
    result: dict[str, Any] = {
        "runs": args.runs, "points": args.points, "fill_s": round(fill_s, 1),
        "db_bytes": args.db.stat().st_size,
        "routes": asyncio.run(routes(args.db, args.runs, args.requests)),
        "page": page(args.db, args.loads),
        "at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["python bench/compare_bench.py", *sys.argv[1:]]),
    }  # fmt: skip
    result["load_average"] = [load_before, os.getloadavg()[0]]
    emit(result)
    if args.out:
        args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
        args.out.with_suffix(".md").write_text(report(result))


if __name__ == "__main__":
    main()
