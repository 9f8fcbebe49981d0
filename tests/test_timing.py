"""The onset and the weight of dated evidence against it (pure, on made-up findings)."""

from __future__ import annotations

from ddx.engine.diagnosis import diagnose
from ddx.engine.timing import (
    CHANGE_AFTER,
    CHANGE_FLOOR,
    FULL,
    change_relevance,
    estimate_onset,
    event_relevance,
    weigh_by_time,
)
from ddx.kb.loader import load_kb
from ddx.model import Evidence, Finding, State, event_times
from ddx.units import iso

KB = load_kb()
NOW = 1_800_000_000.0


def dated(fid: str, *times: float, state: State = State.PRESENT) -> Finding:
    ev = Evidence(source="test", summary=fid, first_seen=iso(min(times)), last_seen=iso(max(times)),
                  times=event_times(list(times)))
    return Finding(fid, state, "probe:test", (ev,))


def now_state(fid: str) -> Finding:
    return Finding(fid, State.PRESENT, "probe:test", (Evidence(source="statvfs /", summary=fid),))


def by_id(findings: list[Finding]) -> dict[str, Finding]:
    return {f.id: f for f in findings}


def test_the_onset_is_the_start_of_the_last_episode():
    errors = dated("logs.enospc", *[NOW - 300 + i for i in range(0, 300, 5)])
    old_crash = dated("procs.segfault", NOW - 4 * 3600)
    onset = estimate_onset([errors, old_crash, now_state("disk.space_exhausted")], KB, NOW)
    assert onset.time == NOW - 300 and onset.ongoing
    assert "logs.enospc" in onset.basis


def test_a_symptom_that_comes_sparsely_is_one_run():
    """An error every three minutes on a quiet site began with its first line, not its last."""
    sparse = dated("logs.timeouts", *[NOW - 1800 + 180 * i for i in range(10)])
    assert estimate_onset([sparse], KB, NOW).time == NOW - 1800


def test_few_or_far_apart_events_are_no_rhythm():
    """Two crashes of a burst and one half an hour later: the later one starts the episode
    (two gaps show no rhythm); events an hour apart never chain, however regular."""
    crashes = dated("procs.segfault", NOW - 1900, NOW - 1899, NOW - 150)
    assert estimate_onset([crashes], KB, NOW).time == NOW - 150
    hourly = dated("logs.timeouts", *[NOW - 3600 * i for i in range(6, 0, -1)])
    assert estimate_onset([hourly], KB, NOW).time == NOW - 3600


def test_no_dated_symptom_means_the_time_of_looking():
    onset = estimate_onset([now_state("disk.space_exhausted")], KB, NOW)
    assert onset.time == NOW and "time of looking" in onset.basis
    assert estimate_onset([], KB, NOW).time is None


def test_event_relevance_decays_to_telling_nothing():
    onset = NOW - 100
    assert event_relevance(onset + 10, onset) == FULL
    assert event_relevance(onset - 20, onset) == FULL  # within the slack
    far = event_relevance(onset - 3 * 3600, onset)
    near = event_relevance(onset - 120, onset)
    assert 0.5 <= far < 0.51 and far < near < FULL


def test_change_relevance():
    onset = NOW - 600
    assert change_relevance([onset - 60], onset)[0] == FULL
    assert change_relevance([onset + 600], onset)[0] == CHANGE_AFTER  # after the errors began: a response
    hours, _ = change_relevance([onset - 5 * 3600], onset)
    assert abs(hours - CHANGE_FLOOR) < 0.01
    # the most suspicious of several: the latest before the onset
    r, t = change_relevance([onset - 5 * 3600, onset - 90, onset + 900], onset)
    assert r == FULL and t == onset - 90


def test_installs_hours_before_the_errors_become_context_not_a_suspect():
    errors = dated("logs.missing_code", *[NOW - 200 + i for i in range(0, 200, 4)])
    installs = dated("change.recent_package_upgrade", NOW - 3 * 3600, NOW - 2 * 3600)
    out, onset = weigh_by_time([errors, installs], KB, NOW)
    f = by_id(out)["change.recent_package_upgrade"]
    assert f.state is State.ABSENT and f.strength > 0.8 and "context" in f.note
    # the same upgrade a minute before the errors began is the prime suspect
    fresh = dated("change.recent_package_upgrade", NOW - 260)
    out, _ = weigh_by_time([errors, fresh], KB, NOW)
    assert by_id(out)["change.recent_package_upgrade"] == fresh
    d_old = diagnose(KB, weigh_by_time([errors, installs], KB, NOW)[0])
    d_new = diagnose(KB, out)
    p = {h.id: h.probability for h in d_old.hypotheses}
    q = {h.id: h.probability for h in d_new.hypotheses}
    assert q["package-upgrade-regression"] > 5 * p["package-upgrade-regression"]


def test_old_kernel_errors_weigh_less_than_fresh_ones():
    enospc = dated("logs.enospc", *[NOW - 120 + i for i in range(0, 120, 2)])
    full = now_state("disk.space_exhausted")
    old_mce = dated("kernel.hardware_error", NOW - 2 * 3600)
    out, _ = weigh_by_time([enospc, full, old_mce], KB, NOW)
    mce = by_id(out)["kernel.hardware_error"]
    assert mce.state is State.PRESENT and mce.strength < 0.55 and "before the trouble began" in mce.note
    d = diagnose(KB, out)
    assert d.hypotheses[0].id == "disk-full" and d.hypotheses[0].probability > 0.9
    assert "kernel.hardware_error" not in d.symptoms  # too soft to say "something is wrong"


def test_a_fault_that_is_all_events_is_its_own_episode():
    """Machine checks and two crashes a few minutes ago, nothing else: they are the incident."""
    t = NOW - 240
    out, onset = weigh_by_time([dated("kernel.hardware_error", t, t + 1),
                                dated("procs.segfaults_multiple_binaries", t + 2, t + 3),
                                dated("procs.segfault", t + 2, t + 3)], KB, NOW)
    assert onset.time == t and not onset.ongoing
    assert all(f.strength == 1.0 for f in out)
    assert diagnose(KB, out).hypotheses[0].id == "hardware-fault"


def test_a_persons_word_is_never_reweighed():
    old = Finding("change.recent_deploy", State.PRESENT, "cli")
    out, _ = weigh_by_time([old, dated("logs.timeouts", NOW - 10)], KB, NOW)
    assert by_id(out)["change.recent_deploy"] is old


def test_event_times_keep_every_quiet_stretch():
    ts = [NOW + i * 0.5 for i in range(1000)] + [NOW + 3600 + i for i in range(30)]
    kept = event_times(ts)
    assert kept == (f"{iso(NOW)}/{iso(NOW + 499.5)}", f"{iso(NOW + 3600)}/{iso(NOW + 3629)}")
    assert event_times([NOW, NOW + 1]) == (iso(NOW), iso(NOW + 1))  # few: every one


def test_a_long_burst_is_one_run_however_it_was_kept():
    """An error every second for two hours, kept as one burst: the trouble began two hours
    ago, not at the last point kept."""
    stream = dated("logs.timeouts", *[NOW - 7200 + i for i in range(7200)])
    assert len(stream.evidence[0].times) == 1
    assert estimate_onset([stream], KB, NOW).time == NOW - 7200


def test_a_state_seen_now_outweighs_older_unrelated_events():
    """An expired certificate (seen now) on a host whose kernel logged machine checks and two
    crashes half an hour ago, and one more crash minutes ago: the certificate is the incident.
    The state seen now continues the crash of two and a half minutes ago (it began some time
    before the look); the machine checks half an hour ago do not belong to it."""
    old = NOW - 1800
    out, onset = weigh_by_time([now_state("tls.cert_expired"),
                                dated("kernel.hardware_error", old, old + 1),
                                dated("procs.segfaults_multiple_binaries", old + 10, old + 11),
                                dated("procs.segfault", old + 10, old + 11, NOW - 150)], KB, NOW)
    assert onset.time == NOW - 150 and onset.ongoing and "procs.segfault" in onset.basis
    assert by_id(out)["kernel.hardware_error"].strength < 0.6
    top = diagnose(KB, out).hypotheses[0]
    assert top.id == "tls-certificate-expired" and top.probability > 0.7, (top.id, top.probability)


def test_a_rhythm_of_crashes_beside_fresh_errors_is_background():
    """A program that has crashed every two minutes for 20 min, and refusals that began a minute
    ago: the trouble began with the refusals; the crashes alone would have been one run."""
    crashes = dated("procs.segfault", *[NOW - 1200 + 120 * i for i in range(10)])
    refused = dated("logs.connection_refused", *[NOW - 60 + i for i in range(60)])
    onset = estimate_onset([crashes, refused], KB, NOW)
    assert onset.time == NOW - 120  # the last crash, a minute before the refusals, joins them; not the nine before
    assert estimate_onset([crashes], KB, NOW).time == NOW - 1200
    # a disk full now beside sparse errors: the errors' rhythm still dates the trouble
    sparse = dated("logs.enospc", *[NOW - 1640 + 180 * i for i in range(10)])
    assert estimate_onset([sparse, now_state("disk.space_exhausted")], KB, NOW).time == NOW - 1640


def test_errors_aligned_with_a_change_count_when_the_errors_belong_to_the_trouble():
    """5xx since ten minutes ago, a configuration edit a minute ago followed at once by
    refusals: the edit came after the onset, yet the alignment is dated by the errors it names,
    which are part of the trouble going on."""
    errors = dated("http.5xx_rate_high", *[NOW - 600 + 2 * i for i in range(300)])
    refused = dated("logs.connection_refused", *[NOW - 60 + i for i in range(60)])
    edit = NOW - 62
    aligned = Finding("change.errors_began_after_config_change", State.PRESENT, "probe:test", (Evidence(
        source="test", summary="began 2 s after config change", first_seen=iso(edit), last_seen=iso(NOW - 60)),))
    out, onset = weigh_by_time([errors, refused, aligned], KB, NOW)
    assert onset.time == NOW - 600
    assert by_id(out)["change.errors_began_after_config_change"] == aligned
    # errors aligned with a change hours before the trouble they are not part of: they tell little
    old = Finding("change.errors_began_after_change", State.PRESENT, "probe:test", (Evidence(
        source="test", summary="began 1 min after package change",
        first_seen=iso(NOW - 4 * 3600), last_seen=iso(NOW - 4 * 3600 + 60)),))
    f = by_id(weigh_by_time([refused, old], KB, NOW)[0])["change.errors_began_after_change"]
    assert f.state is State.PRESENT and f.strength < 0.55 and "before the trouble began" in f.note


def test_a_state_seen_now_continues_events_of_the_last_minutes():
    """Machine checks and crashes a minute or four before ddx looked, and a log that stopped while
    its writer runs (an undated state): the state began some time before the look, so it joins
    the machine checks' episode instead of starting one of its own that leaves them outside."""
    for lead in (62.0, 240.0):
        t = NOW - lead
        out, onset = weigh_by_time([now_state("logs.truncated_lines"),
                                    dated("kernel.hardware_error", t, t + 1),
                                    dated("procs.segfaults_multiple_binaries", t + 2, t + 3),
                                    dated("procs.segfault", t + 2, t + 3)], KB, NOW)
        assert onset.time == t and onset.ongoing, (lead, onset)
        assert by_id(out)["kernel.hardware_error"].strength == 1.0
        top = diagnose(KB, out).hypotheses[0]
        assert top.id == "hardware-fault" and top.probability > 0.9, (lead, top.id, top.probability)
    # ten minutes before the look is beyond the reach: the state seen now is its own episode
    t = NOW - 600
    out, onset = weigh_by_time([now_state("logs.truncated_lines"), dated("kernel.hardware_error", t, t + 1)],
                               KB, NOW)
    assert onset.time == NOW and by_id(out)["kernel.hardware_error"].strength < 0.6
