"""The hang rule (issue 18 item 5): the limit from the step times, the warm-up allowance, the
verdict from the beats, and the loop's heartbeat that feeds it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sparktrainer.settings import Settings
from sparktrainer.training.job.heartbeat import Heartbeat
from sparktrainer.training.worker.hang import HangRule, ProgressWatch

RULE = HangRule(floor_s=10.0, step_factor=20.0, warmup_s=60.0)


def test_the_limit_is_the_floor_or_k_times_the_median_step_time() -> None:
    assert RULE.limit([0.01, 0.02, 0.03]).seconds == 10.0  # 20 x 0.02 s is below the floor
    slow = RULE.limit([1.0, 2.0, 100.0])  # one long step (a checkpoint) moves no median
    assert slow.seconds == 40.0 and "20 x the median step time 2 s" in slow.basis
    assert "SPARKTRAINER_HANG_FLOOR_S=10" in RULE.limit([0.5]).basis


def test_before_the_first_step_the_warm_up_allowance_holds_unless_the_floor_is_higher() -> None:
    first = RULE.limit([])
    assert first.seconds == 60.0 and "SPARKTRAINER_HANG_WARMUP_S=60" in first.basis
    assert HangRule(10.0, 20.0, warmup_s=5.0).limit([]).seconds == 10.0


def test_a_watch_measures_steps_between_beats_and_says_when_the_silence_is_a_hang() -> None:
    watch = ProgressWatch(RULE, since=100.0)
    assert watch.hung(159.0) is None  # setup and the first batch: within the warm-up
    hang = watch.hung(161.0)
    assert hang is not None and hang.step is None and "before its first batch" in hang.describe()
    watch.beat(150.0, 0)  # the first batch came at 150 s
    assert watch.hung(209.0) is None and watch.hung(211.0) is not None  # no step yet: warm-up
    for i in range(1, 11):  # then one step a second, beats of the same step in between
        watch.beat(150.0 + i, i)
        watch.beat(150.5 + i, i)
    assert list(watch.step_times) == [1.0] * 10
    assert watch.hung(180.0) is None  # 19.5 s silent, limit 20 s (20 x 1 s)
    hang = watch.hung(181.0)
    assert hang is not None and hang.step == 10 and hang.limit.seconds == 20.0
    assert "for 20.5 s after step 10, past the hang limit of 20 s" in hang.describe()


def test_a_beat_covering_many_steps_counts_each_and_the_loops_end_stops_the_watch() -> None:
    watch = ProgressWatch(RULE, since=0.0)
    watch.beat(1.0, 0)
    watch.beat(1.25, 500)  # beats are rate-limited: 500 fast steps in one
    assert list(watch.step_times) == [0.25 / 500]
    watch.beat(1.5, 400)  # a step never goes back: a late beat changes nothing but the time
    assert watch.step == 500 and len(watch.step_times) == 1
    watch.beat(2.0, None)  # the loop ended: saving the model is not watched
    assert watch.ended and watch.hung(10_000.0) is None


def test_the_settings_give_the_rule_or_none_and_refuse_a_floor_below_the_beats() -> None:
    rule = HangRule.from_settings(Settings(hang_floor_s=2, hang_step_factor=5, hang_warmup_s=9))
    assert rule == HangRule(2.0, 5.0, 9.0)
    assert HangRule.from_settings(Settings(hang_floor_s=0)) is None  # the watchdog is off
    with pytest.raises(ValidationError, match=r"SPARKTRAINER_HANG_FLOOR_S=0\.5 is below 1 s"):
        Settings(hang_floor_s=0.5)


def test_the_heartbeat_passes_one_beat_per_interval_the_first_step_and_the_end() -> None:
    sent: list[int | None] = []
    beat = Heartbeat(sent.append, every_s=3600.0)
    for step in (5, 5, 5, 6, 6, 7, 8, 9):  # a resumed loop: its first step done is 6
        beat.beat(step)
    beat.ended()
    assert sent == [5, 6, None]  # the first past the first step goes: the warm-up is over
    every = Heartbeat(sent.append, every_s=0.0)
    every.beat(7)
    every.beat(8)
    assert sent == [5, 6, None, 7, 8]
    Heartbeat(None).beat(1)  # nobody watches: nothing to send
