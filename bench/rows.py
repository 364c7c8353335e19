"""The table's rows, built from each benchmark's JSON result (``run_all.py`` prints them).

A row: name, measured, baseline (same run), ratio or percentile, goal, met?, and how its two
sides do the same work. A training row's goal must hold on both clocks (wall and CPU).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

Row = tuple[str, str, str, str, str, str, str]


def met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def med(values: list[float]) -> float:
    return statistics.median(values)


def _clocks(
    r: dict[str, Any], side: str, base: str, base_name: str
) -> tuple[str, str, str, str, str]:
    """measured, baseline, ratios, goal, met? of a training row on both clocks."""
    cpu, wall, goal = r["ratio"], r["wall_ratio"], r["goal"]
    side_wall, base_wall = (med(r[k.replace("_samples", "_wall_samples")]) for k in (side, base))
    return (
        f"{med(r[side]):,.0f} samples/s CPU, {side_wall:,.0f} wall",
        f"{base_name} {med(r[base]):,.0f} CPU, {base_wall:,.0f} wall",
        f"CPU {cpu:.3f}, wall {wall:.3f}",
        f">= {goal} (both)",
        met(cpu >= goal and wall >= goal),
    )  # fmt: skip


def validator_rows(r: dict[str, Any]) -> list[Row]:
    t = r["throughput"]
    raw = (f"raw aiokafka relay {med(t['raw_records_per_s']):,.0f} rec/s "
           f"({t['raw_cpu_us_per_record']} us CPU/rec)")  # fmt: skip
    same = ("same backlog, same broker, each side consumes, produces one record per record, "
            "waits for acks and commits; rounds alternate")  # fmt: skip
    rows = [(
        f"validator throughput ({t['records']:,} mixed records, in-process runtime)",
        f"{med(t['validator_records_per_s']):,.0f} rec/s ({t['validator_cpu_us_per_record']} "
        "us CPU/rec)", raw, f"{t['ratio']:.3f}", f">= {t['goal']}", met(t["ratio"] >= t["goal"]),
        same + f"; batches of up to {t.get('batch_records', 1)}",
    )]  # fmt: skip
    if "unclaimed_ratio" in t:
        rows.append((
            f"validator without S3 id claims ({t['records']:,} mixed records, in-process runtime)",
            f"{med(t['unclaimed_records_per_s']):,.0f} rec/s ({t['unclaimed_cpu_us_per_record']} "
            "us CPU/rec)", raw, f"{t['unclaimed_ratio']:.3f}", f">= {t['goal']}",
            met(t["unclaimed_ratio"] >= t["goal"]),
            same + "; no object store: what the claims cost is the gap to the row above",
        ))  # fmt: skip
    return rows


def latency_rows(r: dict[str, Any]) -> list[Row]:
    lat = r["latency"]
    v, raw = lat["validator"], lat["raw_relay"]
    return [(
        f"submit -> answer latency at {lat['rate_per_s']:,}/s, {lat['rounds']} x "
        f"{lat['seconds']:g} s a side (validator process)",
        f"p50 {v['p50_ms']:g} ms, p99 {v['p99_ms']:g} ms ({v['answered']:,}/{v['sent']:,})",
        f"raw relay process p50 {raw['p50_ms']:g} ms, p99 {raw['p99_ms']:g} ms",
        f"p99 {v['p99_ms']:g} ms", f"p99 < {lat['goal_p99_ms']} ms",
        met(v["p99_ms"] < lat["goal_p99_ms"] and v["answered"] == v["sent"]),
        "same records at the same paced rate; both are processes that consume, produce and "
        "commit each record; rounds alternate relay/validator",
    )]  # fmt: skip


def checkpoint_rows(r: dict[str, Any]) -> list[Row]:
    u, t = r["upload"], r["training"]
    size = f"{u['files']} x {u['file_mb']} MB"
    raw = f"minio fput_object {med(u['raw_fput_object_mb_per_s']):g} MB/s"
    same_upload = "same files to the same S3 server, rounds alternating (wall clock)"
    n_train = round(t["samples"] * 0.9)
    return [
        (f"checkpoint upload, ObjectStore.put_file ({size})",
         f"{med(u['put_file_mb_per_s']):g} MB/s", raw, f"{u['put_file_ratio']:.3f}",
         f">= {u['goal']}", met(u["put_file_ratio"] >= u["goal"]), same_upload),
        (f"checkpoint upload, JobContext.checkpoints.save ({size})",
         f"{med(u['save_checkpoint_mb_per_s']):g} MB/s", raw, f"{u['save_checkpoint_ratio']:.3f}",
         f">= {u['goal']}", met(u["save_checkpoint_ratio"] >= u["goal"]), same_upload),
        (f"training with a checkpoint every epoch vs none (guide MLP, {n_train:,} samples/epoch, "
         f"{t['checkpoint_pause_ms']:g} ms pause/epoch)",
         *_clocks(t, "with_checkpoints_samples_per_s", "without_checkpoints_samples_per_s",
                  "no checkpoints"),
         "the same recipe, model, data and optimizer; only the loop's checkpoint step is "
         "switched off; rounds alternate"),
    ]  # fmt: skip


def train_rows(r: dict[str, Any]) -> list[Row]:
    shape = "x".join(map(str, r["shape"]))
    return [(
        f"PyTorch recipe vs bare loop ({r['model']} {shape}, {r['device']}, {r['threads']} thread)",
        *_clocks(r, "recipe_samples_per_s", "bare_samples_per_s", "bare loop"),
        "same model, data, batches and Adam settings (fused; checked equal); timed from the end "
        "of step 1; rounds alternate",
    )]  # fmt: skip


def hf_rows(r: dict[str, Any]) -> list[Row]:
    return [(
        f"Hugging Face recipe vs bare loop ({r['model']} BERT, {r['device']}, "
        f"{r['threads']} thread)",
        *_clocks(r, "recipe_samples_per_s", "bare_samples_per_s", "bare loop"),
        "same model, padded batches, autocast and AdamW settings (fused; checked equal); timed "
        "from the end of step 1; rounds alternate",
    )]  # fmt: skip


def start_rows(r: dict[str, Any]) -> list[Row]:
    m = r["median_s"]
    same = "the same tiny job through the same recipe code and S3 server; pairs alternate"
    return [
        ("warm: job handed to the warm worker -> first training step",
         f"{m['worker'] * 1000:.1f} ms",
         f"in-process run_recipe_job call {m['in_process'] * 1000:.1f} ms",
         f"{r['warm_overhead_ms']:+g} ms", f"< {r['goal_warm_s'] * 1000:g} ms",
         met(m["worker"] < r["goal_warm_s"]), same + " (both already warm)"),
        ("cold: new warm-worker process -> first training step",
         f"{m['new_worker']:.2f} s",
         f"fresh process, same imports, job in-process {m['fresh_process']:.2f} s",
         f"{r['cold_ratio']:.3f}", f"<= {r['goal_cold_ratio']}",
         met(r["cold_ratio"] <= r["goal_cold_ratio"]), same + " (both from a spawn)"),
        ("warm worker vs a fresh process per job (first step)",
         f"{m['worker'] * 1000:.1f} ms", f"fresh process per job {m['fresh_process']:.2f} s",
         f"{r['warm_vs_fresh_process_speedup']:g}x faster", "none set", "-", same),
    ]  # fmt: skip


def registry_rows(r: dict[str, Any]) -> list[Row]:
    page = r["get_models"]["page 1 (limit 50)"]
    return [
        (f"registry rebuild from the log ({r['models']:,} models)",
         f"{r['projector_rebuild_events_per_s']:,} events/s"
         + (f" ({r['rebuild_cpu_us_per_event']:g} us CPU/event)" if "goal" in r else ""),
         f"raw aiokafka read {r['raw_read_events_per_s']:,} events/s"
         + (f" ({r['raw_cpu_us_per_event']:g} us CPU/event)" if "goal" in r else ""),
         f"{r['rebuild_over_raw_ratio']:.3f}", f">= {r['goal']}" if "goal" in r else "none set",
         met(r["rebuild_over_raw_ratio"] >= r["goal"]) if "goal" in r else "-",
         "the same topic read from the start in one process, rounds alternating; the raw side "
         "only reads, the projector decodes, folds and commits each batch with its offsets"),
        (f"GET /api/models page 1 ({r['models']:,} models, in-process ASGI)",
         f"p50 {page['p50_ms']:g} ms", "-", f"p99 {page['p99_ms']:g} ms", "none set", "-", "-"),
    ]  # fmt: skip


def cli_rows(r: dict[str, Any]) -> list[Row]:
    c, f = r["cli"], r["floor"]
    before = r.get("compared")
    rows: list[Row] = [(
        f"`sparktrainer submit`: process start -> first byte of its record sent ({r['runs']} runs)",
        f"p50 {c['p50_ms']:g} ms, p99 {c['p99_ms']:g} ms ({c['cpu_ms_median']:g} ms CPU)",
        f"python + aiokafka, one send: p50 {f['p50_ms']:g} ms, p99 {f['p99_ms']:g} ms "
        f"({f['cpu_ms_median']:g} ms CPU)",
        f"p50 {c['p50_ms']:g} ms", f"p50 <= {r['goal_p50_ms']:g} ms",
        met(c["p50_ms"] <= r["goal_p50_ms"]),
        "a new process each run, rounds alternating, stamped where the bytes of its Produce "
        "request reach a tap in front of the broker (the same clock as the spawn)",
    )]  # fmt: skip
    if before:
        rows.append((
            f"`sparktrainer submit` before (the CLI of {before['root']}), same rounds",
            f"p50 {before['p50_ms']:g} ms, p99 {before['p99_ms']:g} ms "
            f"({before['cpu_ms_median']:g} ms CPU)", "-", "-", "-", "-",
            "the same job, broker and tap, a third side of the same rounds",
        ))  # fmt: skip
    return rows


def e2e_rows(r: dict[str, Any], ray: dict[str, Any] | None) -> list[Row]:
    """SparkTrainer through the broker, against the raw round trip and Ray Jobs."""
    s, b, floor = r["sequential"], r["burst"], r["broker_round_trip_s"]
    step, done = s["to_first_step_s"], s["to_registered_s"]
    same = (
        "the same tiny MLP job (256 samples, 1 epoch), submitted by a CLI command in a new "
        "process, the same recipe and S3 server; stamps on this machine's wall clock"
    )
    rows: list[Row] = [
        (f"submit -> first training step, {step['n']} jobs one at a time (CLI, broker, validator, "
         "trainer)", f"p50 {step['p50']:.3f} s, p99 {step['p99']:.3f} s",
         f"raw broker round trip p50 {floor['p50'] * 1000:.1f} ms, "
         f"p99 {floor['p99'] * 1000:.1f} ms",
         f"`submit` command alone p50 {s['submit_command_s']['p50']:.3f} s", "-", "-",
         "floor: one produce -> fetch on the same broker in the same run (a job crosses it twice)"),
        (f"submit -> registered model, {done['n']} jobs one at a time",
         f"p50 {done['p50']:.3f} s, p99 {done['p99']:.3f} s", "-", "-", "-", "-", same),
        (f"{b['jobs']} jobs submitted at once -> all registered (one trainer)",
         f"{b['all_registered_s']:.2f} s", "-", "-", "-", "-", same),
    ]  # fmt: skip
    if ray is None:
        return rows
    rs, rb = ray["sequential"], ray["burst"]
    for name, ours, theirs in (
        ("submit -> first step (p50)", step["p50"], rs["to_first_step_s"]["p50"]),
        ("submit -> model stored (p50)", done["p50"], rs["to_end_s"]["p50"]),
        (f"{b['jobs']} at once -> all done", b["all_registered_s"], rb["all_ended_s"]),
    ):
        rows.append((f"vs Ray Jobs {ray['ray']}: {name}", f"{ours:.3f} s",
                     f"Ray Jobs {theirs:.3f} s", f"{theirs / ours:.1f}x ahead", ">= 10x ahead",
                     met(theirs / ours >= 10), same + "; Ray: `ray job submit`, one driver "
                     "process per job"))  # fmt: skip
    return rows


def priority_rows(r: dict[str, Any]) -> list[Row]:
    """bench/priority_bench.py: a high job's wait for its first step, priorities on vs off."""
    n = r["queued_low_jobs"]
    return [
        (f"high-priority job behind {n} queued low ones: submission -> first step",
         f"{r['priorities_on_wall_s']:.2f} s wall, {r['priorities_on_cpu_s']:.2f} s CPU",
         f"priorities off {r['priorities_off_wall_s']:.2f} s wall, "
         f"{r['priorities_off_cpu_s']:.2f} s CPU",
         f"{r['wall_ratio_off_over_on']:g}x sooner (CPU {r['cpu_ratio_off_over_on']:g}x)",
         "none set", "-",
         "the same tiny MLP jobs, stack and trainer; off: oldest waiting job first, whatever "
         "its priority (SCHEDULE_PRIORITIES=false)"),
    ]  # fmt: skip


ROWS: dict[str, Callable[[dict[str, Any]], list[Row]]] = {
    "validator_latency": latency_rows,
    "validator": validator_rows,
    "checkpoint": checkpoint_rows,
    "train_throughput": train_rows,
    "hf_throughput": hf_rows,
    "start_latency": start_rows,
    "registry": registry_rows,
    "cli_start": cli_rows,
    "priority": priority_rows,
}
