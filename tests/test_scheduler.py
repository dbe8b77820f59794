"""The service's scheduling, with the clock under freezegun: the real Service (APScheduler, the SQLite job
store, the job_runs listener) runs probe jobs of this module, and the test moves time and calls wakeup().
Triggers are also tested as pure functions, DST included."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from freezegun import freeze_time

from auditor.config import Config, ServiceSettings
from auditor.errors import ConfigError, ServiceError
from auditor.service.runs import JobRuns
from auditor.service.scheduler import JobSpec, Service, job_specs, stored_next_runs
from auditor.service.triggers import ScheduleError, parse_schedule

BERLIN = ZoneInfo("Europe/Berlin")
CALLS: list[tuple[str, datetime]] = []
RUNNING = {"now": 0, "most": 0}
RELEASE = threading.Event()
_guard = threading.Lock()


def record(name: str) -> None:
    CALLS.append((name, datetime.now(UTC)))


def slow(name: str) -> None:
    with _guard:
        RUNNING["now"] += 1
        RUNNING["most"] = max(RUNNING["most"], RUNNING["now"])
    try:
        CALLS.append((name, datetime.now(UTC)))
        RELEASE.wait(10)
    finally:
        with _guard:
            RUNNING["now"] -= 1


def explode(name: str) -> None:
    raise RuntimeError(f"{name} broke")


@pytest.fixture(autouse=True)
def _reset():
    CALLS.clear()
    RUNNING.update(now=0, most=0)
    RELEASE.clear()
    yield
    RELEASE.set()


def wait_until(condition, timeout: float = 10.0) -> bool:
    """Polls in real time (freezegun freezes the clock, not time.sleep)."""
    for _ in range(int(timeout / 0.02)):
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def settle() -> None:
    """Give the scheduler thread time to act on a wakeup that should start nothing."""
    time.sleep(0.3)


def spec(job_id: str, schedule: str, func: str = "record", zone=UTC) -> JobSpec:
    return JobSpec(job_id, f"{__name__}:{func}", (job_id,), parse_schedule(schedule, zone), schedule)


def config(tmp_path: Path, **service) -> Config:
    return Config(source=None, database=tmp_path / "audit.duckdb", service=ServiceSettings(**service))


def started(cfg: Config, specs: list[JobSpec]) -> Service:
    service = Service(cfg, specs=specs)
    service.start()
    return service


def runs_of(cfg: Config, job_id: str) -> list:
    return sorted(JobRuns(cfg.job_store).history(job_id, 1000), key=lambda r: r.scheduled_at)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_interval_job_fires_once_per_period(tmp_path):
    cfg = config(tmp_path)
    with freeze_time("2026-06-01 10:00:00") as clock:
        service = started(cfg, [spec("tick", "every 60s")])
        try:
            clock.move_to("2026-06-01 10:00:59")
            service.wakeup()
            settle()
            assert CALLS == []
            clock.move_to("2026-06-01 10:01:00")
            service.wakeup()
            assert wait_until(lambda: len(CALLS) == 1)
            clock.move_to("2026-06-01 10:02:00")
            service.wakeup()
            assert wait_until(lambda: len(CALLS) == 2)
            assert wait_until(lambda: len(runs_of(cfg, "tick")) == 2 and runs_of(cfg, "tick")[-1].outcome != "running")
        finally:
            service.shutdown(2)
    assert [r.scheduled_at for r in runs_of(cfg, "tick")] == [at("2026-06-01 10:01:00"), at("2026-06-01 10:02:00")]
    assert {r.outcome for r in runs_of(cfg, "tick")} == {"succeeded"}


def test_cron_job_fires_at_its_wall_clock_time_in_the_configured_zone(tmp_path):
    cfg = config(tmp_path, timezone="Europe/Berlin")
    with freeze_time("2026-06-01 00:00:00") as clock:  # 02:00 in Berlin (CEST, UTC+2)
        service = started(cfg, [spec("daily", "30 2 * * *", zone=BERLIN)])
        try:
            assert stored_next_runs(cfg.job_store)["daily"] == at("2026-06-01 00:30:00")
            clock.move_to("2026-06-01 00:29:59")
            service.wakeup()
            settle()
            assert CALLS == []
            clock.move_to("2026-06-01 00:30:00")
            service.wakeup()
            assert wait_until(lambda: len(CALLS) == 1)
        finally:
            service.shutdown(2)
    assert CALLS[0][1] == at("2026-06-01 00:30:00")


def test_a_run_missed_while_down_is_caught_up_once(tmp_path):
    cfg = config(tmp_path, misfire_grace=7200)
    jobs = [spec("hourly", "0 * * * *")]
    with freeze_time("2026-06-01 10:10:00") as clock:
        started(cfg, jobs).shutdown(2)
        clock.move_to("2026-06-01 13:30:00")  # 11:00, 12:00 and 13:00 were missed; 13:00 is 30 min late
        service = started(cfg, jobs)
        try:
            assert wait_until(lambda: len(CALLS) == 1)
            settle()
            assert len(CALLS) == 1  # coalesced: one run for the three missed
            assert stored_next_runs(cfg.job_store)["hourly"] == at("2026-06-01 14:00:00")
        finally:
            service.shutdown(2)
    [run] = runs_of(cfg, "hourly")
    assert (run.scheduled_at, run.outcome) == (at("2026-06-01 13:00:00"), "succeeded")


def test_no_catch_up_past_the_grace_time(tmp_path):
    cfg = config(tmp_path, misfire_grace=600)
    jobs = [spec("hourly", "0 * * * *")]
    with freeze_time("2026-06-01 10:10:00") as clock:
        started(cfg, jobs).shutdown(2)
        clock.move_to("2026-06-01 13:30:00")  # the newest missed run (13:00) is 30 min late: past 10 min
        service = started(cfg, jobs)
        try:
            assert wait_until(lambda: any(r.outcome == "missed" for r in runs_of(cfg, "hourly")))
            settle()
            assert CALLS == []
            clock.move_to("2026-06-01 14:00:00")
            service.wakeup()
            assert wait_until(lambda: len(CALLS) == 1)
        finally:
            service.shutdown(2)
    runs = [(r.scheduled_at, r.outcome) for r in runs_of(cfg, "hourly")]
    assert runs[0] == (at("2026-06-01 13:00:00"), "missed")
    assert runs[1][0] == at("2026-06-01 14:00:00")


def test_a_job_never_overlaps_itself_and_the_skipped_run_is_recorded(tmp_path):
    cfg = config(tmp_path)
    with freeze_time("2026-06-01 10:00:00") as clock:
        service = started(cfg, [spec("slow", "every 60s", func="slow")])
        try:
            clock.move_to("2026-06-01 10:01:00")
            service.wakeup()
            assert wait_until(lambda: RUNNING["now"] == 1)
            clock.move_to("2026-06-01 10:02:00")  # fires while the first run still goes
            service.wakeup()
            assert wait_until(lambda: any(r.outcome == "skipped" for r in runs_of(cfg, "slow")))
            assert RUNNING["most"] == 1 and len(CALLS) == 1
            RELEASE.set()
            assert wait_until(lambda: runs_of(cfg, "slow")[0].outcome == "succeeded")
        finally:
            service.shutdown(2)
    runs = [(r.scheduled_at, r.outcome) for r in runs_of(cfg, "slow")]
    assert runs == [(at("2026-06-01 10:01:00"), "succeeded"), (at("2026-06-01 10:02:00"), "skipped")]


def test_a_failing_job_is_recorded_and_the_others_keep_running(tmp_path):
    cfg = config(tmp_path)
    with freeze_time("2026-06-01 10:00:00") as clock:
        service = started(cfg, [spec("broken", "every 60s", func="explode"), spec("fine", "every 60s")])
        try:
            for minute in (1, 2):
                clock.move_to(f"2026-06-01 10:0{minute}:00")
                service.wakeup()
                assert wait_until(lambda: len(CALLS) == minute)
            assert wait_until(lambda: [r.outcome for r in runs_of(cfg, "broken")] == ["failed", "failed"])
            # the job's call is counted before its run is recorded: wait for the record, not only the call
            assert wait_until(lambda: [r.outcome for r in runs_of(cfg, "fine")] == ["succeeded", "succeeded"])
        finally:
            service.shutdown(2)
    assert "broken broke" in runs_of(cfg, "broken")[0].error


def test_config_changes_replace_stored_jobs_on_start(tmp_path):
    cfg = config(tmp_path)
    with freeze_time("2026-06-01 10:10:00") as clock:
        started(cfg, [spec("a", "0 * * * *"), spec("gone", "0 * * * *")]).shutdown(2)
        assert set(stored_next_runs(cfg.job_store)) == {"a", "gone"}
        clock.move_to("2026-06-01 10:20:00")
        started(cfg, [spec("a", "every 5m")]).shutdown(2)
    assert stored_next_runs(cfg.job_store) == {"a": at("2026-06-01 10:25:00")}
    assert CALLS == []


def test_unchanged_jobs_keep_their_next_run_across_restarts(tmp_path):
    cfg = config(tmp_path)
    with freeze_time("2026-06-01 10:00:00") as clock:
        started(cfg, [spec("a", "every 1h")]).shutdown(2)
        clock.move_to("2026-06-01 10:30:00")
        started(cfg, [spec("a", "every 1h")]).shutdown(2)
    assert stored_next_runs(cfg.job_store) == {"a": at("2026-06-01 11:00:00")}  # not 11:30


def test_a_second_service_on_the_same_job_store_refuses_to_start(tmp_path):
    cfg = config(tmp_path)
    first = started(cfg, [spec("a", "every 1h")])
    try:
        with pytest.raises(ServiceError, match=r"another `auditor serve` \(pid \d+\).*never be shared"):
            started(cfg, [spec("a", "every 1h")])
    finally:
        first.shutdown(2)
    started(cfg, [spec("a", "every 1h")]).shutdown(2)  # free again once the first stopped


def test_daily_cron_runs_once_on_the_nights_clocks_change_in_the_scheduler(tmp_path):
    cfg = config(tmp_path, timezone="Europe/Berlin")
    with freeze_time("2026-10-24 12:00:00") as clock:
        service = started(cfg, [spec("daily", "30 2 * * *", zone=BERLIN)])
        try:
            for moment in ("2026-10-25 00:30:00", "2026-10-25 01:30:00", "2026-10-26 01:30:00"):
                clock.move_to(moment)  # 02:30 CEST, then 02:30 CET again (the repeated hour), then next day
                service.wakeup()
                settle()
        finally:
            service.shutdown(2)
    assert [c[1] for c in CALLS] == [at("2026-10-25 00:30:00"), at("2026-10-26 01:30:00")]


def fire_times(schedule: str, zone, start: datetime, count: int) -> list[datetime]:
    trigger = parse_schedule(schedule, zone)
    times, previous = [], None
    for _ in range(count):
        previous = trigger.get_next_fire_time(previous, previous or start)
        times.append(previous.astimezone(UTC))
    return times


def test_cron_trigger_as_a_function_follows_the_wall_clock_across_dst():
    # Berlin: 2026-03-29 02:00 CET -> 03:00 CEST; 2026-10-25 03:00 CEST -> 02:00 CET.
    start = datetime(2026, 3, 27, 12, tzinfo=UTC)
    assert fire_times("30 8 * * *", BERLIN, start, 4) == [  # 08:30 local every day: 07:30Z, then 06:30Z
        at("2026-03-28 07:30"), at("2026-03-29 06:30"), at("2026-03-30 06:30"), at("2026-03-31 06:30")]


def test_cron_time_in_the_spring_gap_runs_once_as_far_after_the_change():
    start = datetime(2026, 3, 27, 12, tzinfo=UTC)
    # 02:30 does not exist on 29 March: it runs at 03:30 CEST (01:30Z), once.
    assert fire_times("30 2 * * *", BERLIN, start, 3) == [
        at("2026-03-28 01:30"), at("2026-03-29 01:30"), at("2026-03-30 00:30")]
    # Every 30 minutes: 02:00 and 02:30 run at 03:00 and 03:30 CEST; each instant once.
    assert fire_times("*/30 * * * *", BERLIN, datetime(2026, 3, 29, 0, 10, tzinfo=UTC), 4) == [
        at("2026-03-29 00:30"), at("2026-03-29 01:00"), at("2026-03-29 01:30"), at("2026-03-29 02:00")]


def test_cron_time_in_the_repeated_hour_runs_once_the_first_time():
    start = datetime(2026, 10, 23, 12, tzinfo=UTC)
    assert fire_times("30 2 * * *", BERLIN, start, 3) == [
        at("2026-10-24 00:30"), at("2026-10-25 00:30"), at("2026-10-26 01:30")]
    # Hourly: 02:00 runs at its first occurrence (00:00Z), not again at 01:00Z; then 03:00 CET.
    assert fire_times("0 * * * *", BERLIN, datetime(2026, 10, 24, 23, 10, tzinfo=UTC), 3) == [
        at("2026-10-25 00:00"), at("2026-10-25 02:00"), at("2026-10-25 03:00")]


def test_interval_trigger_counts_elapsed_time_across_dst():
    start = datetime(2026, 10, 24, 23, 30, tzinfo=UTC)
    times = fire_times("every 30m", BERLIN, start, 5)
    assert [b - a for a, b in zip(times, times[1:])] == [timedelta(minutes=30)] * 4


@pytest.mark.parametrize("text", ["61 * * * *", "* * * *", "every 0s", "hourly", "0 0 31 2 * *"])
def test_bad_schedules_are_refused(text):
    with pytest.raises(ScheduleError):
        parse_schedule(text, UTC)


def test_job_specs_name_the_key_of_a_bad_schedule_or_zone(tmp_path):
    from auditor.config import parse_config

    source = tmp_path / "auditor.toml"
    base = {"clouds": [{"name": "demo", "regions": ["r1"]}]}
    with pytest.raises(ConfigError, match=r"auditor.toml: key 'service.run': '61 \* \* \* \*'"):
        job_specs(parse_config({**base, "service": {"run": "61 * * * *"}}, source))
    with pytest.raises(ConfigError, match=r"key 'service.timezone': unknown time zone 'Mars/Olympus'"):
        job_specs(parse_config({**base, "service": {"timezone": "Mars/Olympus"}}, source))
    with pytest.raises(ConfigError, match=r"key 'clouds\[0\].schedule'"):
        job_specs(parse_config({"clouds": [{"name": "demo", "regions": ["r1"], "schedule": "often"}]}, source))
    with pytest.raises(ConfigError, match=r"key 'service.email' schedules the digest, but there is no \[email\]"):
        parse_config({**base, "service": {"email": "0 7 * * *"}}, source)
    with pytest.raises(ConfigError, match=r"key 'service.prune' schedules pruning, but there is no \[retention\]"):
        parse_config({**base, "service": {"prune": "0 3 * * *"}}, source)


def test_a_service_that_cannot_start_leaves_the_job_store_free(tmp_path):
    import socket

    from auditor.config import HttpSettings

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = config(tmp_path, http=HttpSettings(port=port))
        with pytest.raises(ServiceError, match=f"127.0.0.1:{port}"):
            started(cfg, [spec("a", "every 1h")])
    assert wait_until(lambda: not [t for t in threading.enumerate() if t.name == "APScheduler"])
    started(config(tmp_path), [spec("a", "every 1h")]).shutdown(2)  # the lock is free again


@pytest.mark.parametrize("weekday, days", [
    ("1-5", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
    ("0", ["Sun"]), ("7", ["Sun"]), ("5-7", ["Fri", "Sat", "Sun"]), ("sat,sun", ["Sat", "Sun"]),
])
def test_day_of_week_numbers_mean_what_crontab_means(weekday, days):
    """crontab's 1 is Monday and 0 or 7 Sunday (APScheduler's own numbering starts at Monday = 0)."""
    trigger = parse_schedule(f"0 7 * * {weekday}", UTC)
    fired, moment = [], datetime(2026, 6, 1, 0, 0, tzinfo=UTC)  # a Monday
    for _ in range(len(days)):
        moment = trigger.get_next_fire_time(moment, moment)
        fired.append(moment.strftime("%a"))
    assert sorted(fired) == sorted(days) and all(m == 7 for m in [moment.hour])
