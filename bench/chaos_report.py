"""What a chaos run did, read from its events (``bench/chaos_bench.py`` collects them).

Each event comes with the time the bench received it. Per strike (a SIGTERM, a SIGKILL or a
link cut): the step the struck attempt had reached by then (its last JobProgress received
before the strike, or its JobPreempted step), where the next attempt resumed
(``resumed_from_step``), the time from the strike to the next attempt's first step (as
received) and from that attempt's start to its first step (by the trainer's stamps). Over
the run: jobs lost (no end), duplicate models, corrupt checkpoints met, and ends announced by
an attempt that had been cut off and superseded (fencing forbids them), and jobs that moved
with no strike (a live trainer's attempt superseded).
"""

from __future__ import annotations

from typing import Any

from benchkit import percentile

from sparktrainer.contracts.events import (
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobPreempted,
    JobProgress,
    JobStarted,
    ModelRegistered,
)

ENDS = (JobCompleted, JobFailed, JobCancelled)
KINDS = ("SIGTERM", "SIGKILL", "cut")
GOALS = {"jobs_lost": 0, "duplicate_models": 0, "corrupt_checkpoints": 0, "stale_ends": 0,
         "lost_steps_per_sigterm_max": 1}  # fmt: skip
Timed = list[tuple[float, Any]]


def after_strike(events: Timed, strike: dict[str, Any]) -> dict[str, Any]:
    """What became of the struck attempt: the step it reached, where the next one resumed."""
    job_id, attempt, sent = strike["job_id"], strike["attempt"], strike["sent"]
    mine = [(t, e) for t, e in events if getattr(e, "job_id", None) == job_id]
    steps = [e.step for t, e in mine
             if isinstance(e, JobProgress) and e.attempt == attempt and t <= sent]  # fmt: skip
    stopped = [e for _, e in mine if isinstance(e, JobPreempted) and e.attempt == attempt]
    reached = max([*steps, *[e.step for e in stopped if e.step is not None], 0])
    later = sorted((e.attempt, t, e) for t, e in mine
                   if isinstance(e, JobStarted) and e.attempt > attempt)  # fmt: skip
    out = {**strike, "reached_step": reached,
           "preempted_step": stopped[0].step if stopped else None}  # fmt: skip
    if not later:
        out["resumed"] = False  # it ended (or was lost) before another attempt started
        return out
    nxt_attempt, _, nxt = later[0]
    progress = [(t, e) for t, e in mine if isinstance(e, JobProgress) and e.attempt == nxt_attempt]
    first = [t for t, _ in progress]
    out.update(resumed=True, resumed_from_step=nxt.resumed_from_step or 0,
               lost_steps=reached - (nxt.resumed_from_step or 0))  # fmt: skip
    if first:
        out["strike_to_first_step_s"] = round(min(first) - sent, 3)
        # By the trainer's own stamps: the two often come in one read of the tail.
        first_at = min(e.at for _, e in progress)
        out["start_to_first_step_s"] = round((first_at - nxt.at).total_seconds(), 3)
    return out


def stale_ends(events: Timed, strikes: list[dict[str, Any]]) -> list[str]:
    """Ends (or preemptions) announced by a cut-off attempt after a later attempt started."""
    cut = {(s["job_id"], s["attempt"]) for s in strikes if s["kind"] == "cut"}
    moved = {(e.job_id, a) for _, e in events if isinstance(e, JobStarted)
             for a in range(1, e.attempt)}  # fmt: skip
    stale = cut & moved
    return [f"{type(e).__name__} {e.job_id} attempt {e.attempt}" for _, e in events
            if isinstance(e, (*ENDS, JobPreempted)) and (e.job_id, e.attempt) in stale]  # fmt: skip


def unstruck_moves(events: Timed, strikes: list[dict[str, Any]]) -> list[str]:
    """Attempts that started while the one before had no end, no preemption and no strike:
    a job that moved on its own (a rebalance took its partition from a live trainer)."""
    struck = {(s["job_id"], s["attempt"]) for s in strikes}
    over = {(e.job_id, e.attempt) for _, e in events if isinstance(e, (*ENDS, JobPreempted))}
    return [f"{e.job_id} attempt {e.attempt} on {e.worker}" for _, e in events
            if isinstance(e, JobStarted) and e.attempt > 1
            and (e.job_id, e.attempt - 1) not in struck | over]  # fmt: skip


def story(events: Timed, t0: float) -> dict[str, list[list[Any]]]:
    """Per job, its starts, preemptions and ends: [seconds into the run, event, attempt, what]."""
    out: dict[str, list[list[Any]]] = {}
    for t, e in events:
        if isinstance(e, JobStarted):
            what: Any = {"resumed_from_step": e.resumed_from_step, "worker": e.worker}
        elif isinstance(e, JobPreempted):
            what = {"step": e.step}
        elif isinstance(e, ENDS):
            what = {}
        else:
            continue
        out.setdefault(e.job_id, []).append([round(t - t0, 2), type(e).__name__, e.attempt, what])
    return out


def verdict(
    events: Timed, ids: set[str], strikes: list[dict[str, Any]], t0: float
) -> dict[str, Any]:
    """The counts the goals are set on, the per-strike figures, each job's story."""
    ev = [e for _, e in events if getattr(e, "job_id", None) in ids]
    ends = {e.job_id: e for e in ev if isinstance(e, ENDS)}
    registered: dict[str, set[Any]] = {}
    for e in ev:
        if isinstance(e, ModelRegistered):
            registered.setdefault(e.job_id, set()).add(e.created_at)  # a resent record: once
    skipped = sum(len(e.skipped_checkpoints) for e in ev if isinstance(e, JobStarted))
    refused = [e for e in ends.values()
               if isinstance(e, JobFailed) and e.error_type == "UnsafeArtifactError"]  # fmt: skip
    mine = [(t, e) for t, e in events if getattr(e, "job_id", None) in ids]
    return {
        "jobs": len(ids),
        "jobs_completed": sum(isinstance(e, JobCompleted) for e in ends.values()),
        "jobs_failed": {
            e.job_id: f"{e.cause}: {e.reason}"[:200]
            for e in ends.values()
            if isinstance(e, JobFailed)
        },
        "jobs_lost": sorted(ids - set(ends)),
        "duplicate_models": sum(len(v) - 1 for v in registered.values()),
        "corrupt_checkpoints": skipped + len(refused),
        "stale_ends": stale_ends(mine, strikes),
        "unstruck_moves": unstruck_moves(mine, strikes),
        "strikes": [{**after_strike(mine, s), "sent": round(s["sent"] - t0, 2)} for s in strikes],
        "stories": story(mine, t0),
    }


def figures(found: dict[str, Any]) -> dict[str, Any]:
    """Lost steps per kind of strike, resume times (p50/p99) over the resumed ones."""
    out: dict[str, Any] = {}
    everyone = [s for s in found["strikes"] if s.get("resumed")]
    for kind in (*KINDS, "all"):
        resumed = [s for s in everyone if kind in (s["kind"], "all")]
        lost = [s["lost_steps"] for s in resumed]
        out[kind] = {"sent": sum(kind in (s["kind"], "all") for s in found["strikes"]),
                     "resumed": len(resumed), "lost_steps": lost,
                     "lost_steps_max": max(lost, default=None)}  # fmt: skip
        for name in ("strike_to_first_step_s", "start_to_first_step_s"):
            values = [s[name] for s in resumed if name in s]
            if values:
                out[kind][name] = {"p50": percentile(values, 0.5), "p99": percentile(values, 0.99)}
    return out


def _times(side: dict[str, Any], name: str) -> str:
    got = side.get(name)
    return f"{got['p50']:.2f} / {got['p99']:.2f} s" if got else "-"


def markdown(r: dict[str, Any]) -> str:
    """The result as the tables committed beside the JSON."""
    term = r["by_kind"]["SIGTERM"]
    rows = [
        ("jobs lost (no end)", len(r["jobs_lost"]), "0", not r["jobs_lost"]),
        ("duplicate models", r["duplicate_models"], "0", r["duplicate_models"] == 0),
        ("corrupt checkpoints met", r["corrupt_checkpoints"], "0", r["corrupt_checkpoints"] == 0),
        ("ends announced by a cut-off, superseded attempt", len(r["stale_ends"]), "0",
         not r["stale_ends"]),
        ("lost steps per SIGTERM (max)", term["lost_steps_max"], "<= 1",
         term["lost_steps_max"] is not None and term["lost_steps_max"] <= 1),
    ]  # fmt: skip
    lines = [
        f"{r['jobs']} jobs ({r['jobs_completed']} completed, {len(r['jobs_failed'])} failed), "
        f"{len(r['strikes'])} strikes, {r['run_s']} s, seed {r['seed']}, 1-minute load "
        f"{r['load_before']} before and {r['load_after']} after; cut-off trainers' exit codes "
        f"once their link came back: {r['cut_exit_codes']}; jobs that moved with no strike: "
        f"{r['unstruck_moves'] or 'none'}.", "",
        "| measure | measured | goal | met? |", "| --- | --- | --- | --- |",
    ]  # fmt: skip
    lines += [f"| {a} | {b} | {c} | {'yes' if d else '**no**'} |" for a, b, c, d in rows]
    lines += [
        "", "| strike | sent | resumed | lost steps each | strike -> next first step p50 / p99 "
        "| resumed start -> first step p50 / p99 |", "| --- | --- | --- | --- | --- | --- |",
    ]  # fmt: skip
    for name in (*KINDS, "all"):
        side = r["by_kind"][name]
        lines.append(f"| {name} | {side['sent']} | {side['resumed']} | {side['lost_steps']} | "
                     f"{_times(side, 'strike_to_first_step_s')} | "
                     f"{_times(side, 'start_to_first_step_s')} |")  # fmt: skip
    return "\n".join(lines) + "\n"
