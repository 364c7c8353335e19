"""Quotas and weighted fair share in simulated time: the REAL pick rule, a Kueue-style fleet.

    python bench/fairshare_sim.py [--jobs 6000] [--rounds 2] [--smoke] [--out FILE]

Five tenants (weights 3, 2, 2, 1, 1) in two cohorts submit jobs of three classes (cpu, gpu,
multi-gpu) and three priorities to a fleet of 12 CPU trainers, 8 one-GPU trainers (taking CPU
work too) and 4 four-GPU trainers (taking gpu work too). Each tenant has a nominal quota per
class in proportion to its weight and may borrow idle quota of its cohort. Every tenant offers
1.2 to 3 times its weighted share of the fleet (``OFFERED``), so all are backlogged, unequally,
and the rule decides who gets what, except tenant ``nlp``, idle for the first third (its quota
is lent), and a stream of fresh high-priority GPU jobs of ``prod`` beside one CPU job of
``nlp`` submitted at once, the starvation probe of issue 17.

Each free trainer asks :class:`sparktrainer.contracts.fairshare.FairShare` which of the waiting
jobs it serves to start, from the heads of each (class, priority, tenant) line (a topic
partition holds one FIFO line per tenant, as the trainer's picker keeps them). The baseline,
run on the same jobs in the same process with rounds alternating, is the rule before issue 17:
``Waiting.order`` (aged priority, class, age) with no tenants.

Reported: quota utilisation (busy trainer-seconds over the fleet's, while all is backlogged),
Jain's index of each tenant's dominant share over its weight (per hour, among the tenants
with work waiting, averaged), the longest wait of a job at the head of its tenant's line and
within quota against the aging bound (``overdue_s`` + the longest run: an overdue job starts on
the next trainer of its class that frees), the longest wait of any job, and decisions per
second of CPU time spent in the pick alone.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import random
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sparktrainer.contracts.fairshare import (  # noqa: E402
    OWN,
    Candidate,
    FairShare,
    Ledger,
    Quota,
    Share,
    UsageWindow,
    overdue_s,
)
from sparktrainer.contracts.scheduling import PRIORITIES, Waiting  # noqa: E402
from sparktrainer.settings import Settings  # noqa: E402

AGING_S = 300.0
# The trainer's default: a tenant's share is its trainer- and GPU-seconds over this window.
WINDOW_S = float(Settings.model_fields["schedule_fair_window_s"].default)
WEIGHTS = {"research": 3.0, "vision": 2.0, "prod": 2.0, "nlp": 1.0, "default": 1.0}
# How many times its weighted share of the fleet each tenant asks for: all are backlogged, and
# unequally, so first-come-first-served would split the fleet by demand, not by weight.
OFFERED = {"research": 1.2, "vision": 3.0, "prod": 1.2, "nlp": 1.5, "default": 2.0}
COHORTS = {"research": "ml", "vision": "ml", "nlp": "ml", "prod": "ops", "default": "ops"}
# name -> (count, classes served in order, GPUs each)
FLEET = [
    ("cpu", 12, ("cpu",), 0),
    ("gpu", 8, ("gpu", "cpu"), 1),
    ("multi", 4, ("multi-gpu", "gpu"), 4),
]
# class -> (share of a tenant's jobs, GPUs held, run seconds low..high)
MIX = {
    "cpu": (0.55, 0, (60, 300)),
    "gpu": (0.38, 1, (120, 600)),
    "multi-gpu": (0.07, 4, (300, 900)),
}
LONGEST_RUN_S = max(hi for _, _, (_, hi) in MIX.values())


@dataclass
class Job:
    """One simulated job."""

    n: int
    tenant: str
    resource_class: str
    priority: str
    gpus: int
    run_s: float
    at_s: float
    started_s: float = -1.0
    head_since_s: float = -1.0  # since when it is the head of its line and within quota
    admissible_wait_s: float = 0.0


def _split(total: int) -> dict[str, int]:
    """``total`` split by weight, largest remainders first (the parts add up to ``total``)."""
    w_sum = sum(WEIGHTS.values())
    exact = {t: total * w / w_sum for t, w in WEIGHTS.items()}
    parts = {t: int(x) for t, x in exact.items()}
    for t in sorted(exact, key=lambda t: parts[t] - exact[t])[: total - sum(parts.values())]:
        parts[t] += 1
    return parts


def shares() -> dict[str, Share]:
    """Nominal quotas backed by the fleet: cpu and gpu split by weight, each cohort's largest
    multi-gpu's GPUs by weight in fours; a tenant may borrow a class's whole size."""
    cpu, gpu, multi = _split(12), _split(8), _split(4)
    out = {}
    for t, w in WEIGHTS.items():
        quotas = {
            "cpu": Quota(jobs=cpu[t], borrow_jobs=12),
            "gpu": Quota(jobs=gpu[t], borrow_jobs=8),
            "multi-gpu": Quota(gpus=4 * multi[t], borrow_gpus=16),
        }
        out[t] = Share(weight=w, cohort=COHORTS[t], quotas=quotas)
    return out


def make_jobs(n_jobs: int, seed: int) -> list[Job]:
    """Poisson arrivals per tenant at OFFERED x its weighted share of the fleet; nlp from 1/3 on."""
    rng = random.Random(seed)
    total_w = sum(WEIGHTS.values())
    mean_run = sum(share * (lo + hi) / 2 for share, _, (lo, hi) in MIX.values())
    fleet_rate = sum(count for _, count, _, _ in FLEET) / mean_run  # jobs/s at full use
    horizon = n_jobs / (1.8 * fleet_rate)
    jobs: list[Job] = []
    for tenant, w in WEIGHTS.items():
        rate, t = (
            OFFERED[tenant] * fleet_rate * w / total_w,
            (horizon / 3 if tenant == "nlp" else 0.0),
        )
        while t < horizon:
            t += rng.expovariate(rate)
            cls = rng.choices(list(MIX), weights=[m[0] for m in MIX.values()])[0]
            lo, hi = MIX[cls][2]
            prio = rng.choices(PRIORITIES, weights=(1, 3, 1))[0]
            jobs.append(Job(0, tenant, cls, prio, MIX[cls][1], rng.uniform(lo, hi), t))
    jobs += [Job(0, "prod", "gpu", "high", 1, 200.0, 600.0 + 30 * i) for i in range(200)]
    jobs.append(Job(0, "nlp", "cpu", "low", 0, 100.0, 650.0))  # the starvation probe
    jobs.sort(key=lambda j: j.at_s)
    for i, j in enumerate(jobs):
        j.n = i
    return jobs


@dataclass
class Sim:
    """The fleet, the lines of waiting jobs and the ledger; ``choose`` is the rule under test."""

    choose: Callable[[Sequence[Candidate], Ledger, int], int | None]
    rule: FairShare
    lines: dict[tuple[str, str, str], deque[Job]] = field(default_factory=dict)
    ledger: Ledger = field(default_factory=Ledger)
    window: UsageWindow | None = None  # the fair share over a window (the trainer's default)
    picks: int = 0
    pick_cpu_s: float = 0.0

    def heads(self, classes: tuple[str, ...]) -> list[Job]:
        return [q[0] for (cls, _, _), q in self.lines.items() if q and cls in classes]

    def candidate(self, j: Job) -> Candidate:
        w = Waiting(j.priority, j.resource_class, int(j.at_s * 1000), ("", 0, j.n))
        return Candidate(w, j.tenant, j.gpus)

    def pick(self, classes: tuple[str, ...], now_s: float) -> Job | None:
        heads = self.heads(classes)
        if not heads:
            return None
        cands = [self.candidate(j) for j in heads]
        t0 = time.process_time()
        if self.window is not None:  # the trainer fills its ledger on every pick too
            self.window.fill(self.ledger, now_s)
        i = self.choose(cands, self.ledger, int(now_s * 1000))
        self.pick_cpu_s += time.process_time() - t0
        self.picks += 1
        if i is None:
            return None
        job = heads[i]
        self.lines[(job.resource_class, job.priority, job.tenant)].popleft()
        return job

    def mark_heads(self, now_s: float) -> None:
        """Count the time each line's head waits while its tenant has room for it."""
        for q in self.lines.values():
            if not q:
                continue
            head = q[0]
            ok = self.rule.room(self.candidate(head), self.ledger) == OWN
            if ok and head.head_since_s < 0:
                head.head_since_s = now_s
            elif not ok and head.head_since_s >= 0:
                head.admissible_wait_s += now_s - head.head_since_s
                head.head_since_s = -1.0


def simulate(jobs: list[Job], sim: Sim) -> dict[str, Any]:
    """Run every job to its end; the measures of the module docstring."""
    trainers = [(name, classes, gpus) for name, count, classes, gpus in FLEET for _ in range(count)]
    sim.ledger.trainers = len(trainers)
    sim.ledger.gpus = sum(g for _, _, g in trainers)
    free = list(range(len(trainers)))
    events: list[tuple[float, int, int, Job | None]] = [(j.at_s, 1, j.n, j) for j in jobs]
    heapq.heapify(events)
    busy: dict[str, list[tuple[float, float, int, int]]] = {t: [] for t in WEIGHTS}
    now = 0.0
    while events:
        now, kind, index, job = heapq.heappop(events)
        if kind == 1 and job is not None:
            sim.lines.setdefault((job.resource_class, job.priority, job.tenant), deque()).append(
                job
            )
        elif job is not None:  # an end (kind 0): index is the trainer's
            sim.ledger.hold(job.tenant, job.resource_class, job.gpus, -1)
            if sim.window is not None:
                sim.window.end(str(index), now)
            free.append(index)
        sim.mark_heads(now)
        for ti in list(free):
            _name, classes, _g = trainers[ti]
            nxt = sim.pick(classes, now)
            if nxt is None:
                continue
            free.remove(ti)
            _start(nxt, now, sim)
            if sim.window is not None:
                sim.window.start(str(ti), nxt.tenant, nxt.resource_class, nxt.gpus, now)
            busy[nxt.tenant].append((now, now + nxt.run_s, 1, nxt.gpus))
            heapq.heappush(events, (now + nxt.run_s, 0, ti, nxt))
        sim.mark_heads(now)
    return measures(jobs, busy, trainers, sim)


def _start(job: Job, now: float, sim: Sim) -> None:
    if job.head_since_s >= 0:
        job.admissible_wait_s += now - job.head_since_s
        job.head_since_s = -1.0
    job.started_s = now
    sim.ledger.hold(job.tenant, job.resource_class, job.gpus)


def _jain(xs: list[float]) -> float:
    return sum(xs) ** 2 / (len(xs) * sum(x * x for x in xs)) if any(xs) else 0.0


def _overlap(a: float, b: float, lo: float, hi: float) -> float:
    return max(0.0, min(b, hi) - max(a, lo))


def measures(
    jobs: list[Job], busy: dict[str, list[tuple[float, float, int, int]]],
    trainers: list[tuple[str, tuple[str, ...], int]], sim: Sim,
) -> dict[str, Any]:  # fmt: skip
    """Utilisation and Jain over the backlogged span; waits; decisions per second."""
    last_arrival = max(j.at_s for j in jobs)
    lo, hi = last_arrival * 0.05, last_arrival
    n_tr, n_gpu = len(trainers), sum(g for _, _, g in trainers)
    used = sum(_overlap(a, b, lo, hi) for iv in busy.values() for a, b, _, _ in iv)
    hour, jains = 3600.0, []
    t = lo
    while t + hour <= hi:
        xs = []
        for tenant, iv in busy.items():
            if tenant == "nlp" and t < last_arrival / 3 + hour:
                continue  # idle, then catching up: not yet a backlogged tenant
            slot = sum(_overlap(a, b, t, t + hour) for a, b, _, _ in iv) / (n_tr * hour)
            gpu = sum(_overlap(a, b, t, t + hour) * g for a, b, _, g in iv) / (n_gpu * hour)
            xs.append(max(slot, gpu) / WEIGHTS[tenant])
        jains.append(_jain(xs))
        t += hour
    probe = next(j for j in jobs if j.tenant == "nlp" and j.at_s == 650.0)
    return {
        "jobs": len(jobs),
        "simulated_h": round(last_arrival / 3600, 1),
        "utilisation": round(used / (n_tr * (hi - lo)), 4),
        "jain": round(sum(jains) / len(jains), 4) if jains else None,
        "jain_min_hour": round(min(jains), 4) if jains else None,
        "longest_admissible_wait_s": round(max(j.admissible_wait_s for j in jobs), 1),
        "longest_wait_s": round(max(j.started_s - j.at_s for j in jobs), 1),
        "probe_wait_s": round(probe.started_s - probe.at_s, 1),
        "decisions": sim.picks,
        "decisions_per_s": round(sim.picks / sim.pick_cpu_s) if sim.pick_cpu_s else None,
    }


def fair(rule: FairShare) -> Callable[[Sequence[Candidate], Ledger, int], int | None]:
    return rule.pick


def before_issue_17(cands: Sequence[Candidate], _ledger: Ledger, now_ms: int) -> int | None:
    """The rule before issue 17: aged priority, class, age; no tenants, no quotas."""
    keys = [c.waiting.order(now_ms, AGING_S) for c in cands]
    return min(range(len(cands)), key=keys.__getitem__)


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run(n_jobs: int, rounds: int, seed: int) -> dict[str, Any]:
    """Rounds alternate the fair-share rule and the baseline on the same jobs."""
    out: dict[str, list[dict[str, Any]]] = {"fairshare": [], "baseline": []}
    for r in range(rounds):
        for name in ("fairshare", "baseline") if r % 2 == 0 else ("baseline", "fairshare"):
            rule = FairShare(shares(), AGING_S)
            choose = rule.pick if name == "fairshare" else before_issue_17
            wall0, cpu0 = time.perf_counter(), time.process_time()
            window = UsageWindow(WINDOW_S) if name == "fairshare" else None
            got = simulate(make_jobs(n_jobs, seed), Sim(choose, rule, window=window))
            got["wall_s"] = round(time.perf_counter() - wall0, 2)
            got["cpu_s"] = round(time.process_time() - cpu0, 2)
            out[name].append(got)
    fs = out["fairshare"][-1]
    bound = overdue_s(AGING_S) + LONGEST_RUN_S
    return {
        "bench": "fairshare_sim",
        "aging_s": AGING_S,
        "fair_window_s": WINDOW_S,
        "aging_bound_s": bound,
        "rounds": out,
        "goals": {
            "utilisation>=0.90": fs["utilisation"] >= 0.90,
            "jain>=0.95": (fs["jain"] or 0) >= 0.95,
            "admissible_wait<=bound": fs["longest_admissible_wait_s"] <= bound,
            "decisions_per_s>=1000": (fs["decisions_per_s"] or 0) >= 1000,
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=6000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--smoke", action="store_true", help="a few hundred jobs, one round")
    ap.add_argument("--out", type=Path, help="also write the result here (JSON)")
    args = ap.parse_args()
    before = load()
    result = run(400 if args.smoke else args.jobs, 1 if args.smoke else args.rounds, args.seed)
    result |= {"load_before": before, "load_after": load(), "cpus": os.cpu_count()}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
