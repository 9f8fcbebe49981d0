"""Summaries: new templates, surges, levels, the baseline split, findings."""

from __future__ import annotations

import json
import time

from ddx.logs import log_findings, summarize
from ddx.model import State

T0 = time.mktime((2024, 5, 1, 12, 0, 0, 0, 0, -1))


def _ts(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) + ",000"


def _incident_log() -> list[str]:
    """Two hours of normal traffic with a rare error, then 20 minutes of trouble."""
    out = []
    for i in range(720):  # 12:00-14:00, one request every 10 s
        t = T0 + i * 10
        out.append(f"{_ts(t)} INFO [http-{i % 4}] GET /api/items/{i} 200 in {i % 90} ms")
        if i % 120 == 0:
            out.append(f"{_ts(t)} ERROR [http-1] upstream db-{i % 3} timed out after 30 s")
    for i in range(400):  # 14:00-14:20, every 3 s
        t = T0 + 7200 + i * 3
        out.append(f"{_ts(t)} INFO [http-{i % 4}] GET /api/items/{i} 200 in {i % 90} ms")
        out.append(f"{_ts(t)} ERROR [http-2] upstream db-{i % 3} timed out after 30 s")
        if i % 5 == 0:
            out.append(f"{_ts(t)} ERROR [writer] write /var/lib/app/queue.db: No space left on device")
    return out


def test_new_error_template_and_surges_with_a_given_split():
    s = summarize(_incident_log(), baseline_until=T0 + 7200)
    assert s.baseline_until == T0 + 7200
    assert [t.template for t in s.new_errors] == ["write <*>: No space left on device"]
    enospc = s.new_errors[0]
    assert (enospc.baseline_count, enospc.incident_count, enospc.level) == (0, 80, "error")
    assert enospc.first == T0 + 7200 and enospc.sample.endswith("No space left on device")
    surged = {b.template or b.id: b for b in s.bursts}
    timeout = surged["upstream db-<*> timed out after <*>"]
    assert (timeout.baseline_count, timeout.incident_count) == (6, 400)
    assert timeout.factor > 5
    assert "level:error" in surged
    assert "GET <*> in <*>" in {t.template for t in s.templates}
    assert "GET <*> in <*>" not in surged  # requests only went 3.3x
    assert s.lines == s.baseline_lines + s.incident_lines


def test_default_split_is_three_quarters_of_the_time_span():
    s = summarize(_incident_log())
    span = (T0 + 7200 + 399 * 3) - T0
    assert 0 <= (T0 + 0.75 * span) - s.baseline_until <= span / 32 + 1  # bins: width <= span/32
    assert [t.template for t in s.new_errors] == ["write <*>: No space left on device"]


def test_without_timestamps_the_baseline_is_the_first_lines():
    lines = [f"request {i} served" for i in range(300)] + ["fatal: cannot open socket"] * 20
    s = summarize(lines)
    assert s.baseline_until is None and "first three quarters of the lines" in s.split
    assert [t.template for t in s.new_errors] == ["fatal: cannot open socket"]
    assert s.new_errors[0].level == "error"  # inferred from the words


def test_since_drops_earlier_lines():
    s = summarize(_incident_log(), since=T0 + 7200, baseline_until=T0 + 7800)
    assert s.lines == 3 * 400 // 1 - 400 + 80  # two lines per step plus ENOSPC every 5th
    assert any("before --since" in n for n in s.skipped)
    assert s.new_errors == ()  # ENOSPC already in the baseline part (14:00-14:10)


def test_header_level_wins_over_words():
    lines = [f"2024-05-01 12:00:{i:02d},000 INFO [main] corrected error count {i}" for i in range(40)]
    s = summarize(lines)
    assert s.templates[0].level == "info" and s.errors == ()


def test_a_template_that_generalises_is_not_new():
    lines = [f"{_ts(T0 + i)} INFO session opened for user {u}" for i, u in enumerate(["alice", "bob"] * 30)]
    lines += [f"{_ts(T0 + 100 + i)} INFO session opened for user {u}" for i, u in enumerate(["carol", "dave"] * 10)]
    s = summarize(lines, baseline_until=T0 + 100)
    assert [t.template for t in s.templates] == ["session opened for user <*>"]
    assert s.new == ()


def test_findings_present():
    s = summarize(_incident_log(), baseline_until=T0 + 7200)
    f = {x.id: x for x in log_findings(s, source="/var/log/app.log")}
    assert f["logs.new_error_signature"].state is State.PRESENT
    ev = f["logs.new_error_signature"].evidence[0]
    assert "No space left on device" in ev.summary and ev.count == 80 and ev.samples
    assert f["logs.error_burst"].state is State.PRESENT


def test_findings_absent_when_the_incident_looks_like_the_baseline():
    lines = [f"{_ts(T0 + i * 10)} INFO request {i} ok" for i in range(400)]
    lines += [f"{_ts(T0 + i * 10 + 5)} ERROR retry {i} failed" for i in range(0, 400, 40)]
    lines.sort()
    f = {x.id: x.state for x in log_findings(summarize(lines), source="x.log")}
    assert f == {"logs.new_error_signature": State.ABSENT, "logs.error_burst": State.ABSENT}


def test_findings_unknown_without_a_baseline():
    s = summarize([f"{_ts(T0)} ERROR boom {i}" for i in range(10)])
    assert s.baseline_lines == 0
    assert log_findings(s, source="x.log") == []


def test_summary_serialises_to_json():
    d = summarize(_incident_log(), baseline_until=T0 + 7200).to_dict()
    text = json.dumps(d)
    back = json.loads(text)
    assert set(back) >= {"templates", "new_errors", "bursts", "skipped", "baseline_until", "split"}
    t = back["templates"][0]
    assert set(t) >= {"id", "template", "count", "level", "first", "last", "sample", "baseline_count", "incident_count"}


def test_several_sources_in_one_summary():
    from ddx.logs import summarize_many

    app = _incident_log()
    syslog = [f"May  1 {12 + i // 60:02d}:{i % 60:02d}:00 web1 cron[42]: job {i} started" for i in range(120)]
    s = summarize_many({"app.log": app, "syslog": syslog}, baseline_until=T0 + 7200, reference_time=T0 + 86400)
    assert dict(s.formats) == {"app.log": "timestamp-level", "syslog": "rfc3164"}
    cron = next(t for t in s.templates if t.template == "job <*> started")
    assert cron.sources == ("syslog",) and cron.count == 120
    assert [t.template for t in s.new_errors] == ["write <*>: No space left on device"]


def test_memory_stays_bounded_on_a_stream_of_new_templates():
    import random

    from ddx.logs.miner import TemplateMiner
    from ddx.logs.summary import MAX_SAMPLE, SummaryBuilder

    rnd = random.Random(7)
    words = ["".join(rnd.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(7)) for _ in range(500)]
    b = SummaryBuilder(miner=TemplateMiner(max_clusters=50))
    lines = [" ".join(rnd.choice(words) for _ in range(6)) for _ in range(3000)]
    b.add_lines(lines + ["y" * 50_000], "random")
    s = b.build()
    assert len(b._stats) <= 2 * 50 and len(b._retired) <= 2 * 50
    assert sum(t.count for t in s.templates) + b.dropped_lines == s.lines
    assert any("dropped to bound memory" in n for n in s.skipped)
    assert max(len(t.sample) for t in s.templates) <= MAX_SAMPLE + 3
