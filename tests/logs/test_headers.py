"""Header detection: every listed format, detected from its lines alone."""

from __future__ import annotations

import calendar
import time

import pytest

from ddx.logs.headers import detect, normalise_level, records
from ddx.logs.times import TimeParser

UTC_2024_05_01_1430 = calendar.timegm((2024, 5, 1, 14, 30, 0, 0, 0, 0))

SAMPLES = {
    "rfc5424": [
        '<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" '
        'eventSource="Application" eventID="1011"] An application event log entry',
        "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - 'su root' failed for lonvick on /dev/pts/8",
    ],
    "rfc3164": [
        "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
        "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; logname= uid=0 euid=0 tty=NODEVssh",
        "Jun 14 15:16:02 combo last message repeated 2 times",
    ],
    "rfc3164-iso": [
        "2024-05-01T14:30:00.123456+00:00 web1 sshd[912]: Accepted publickey for deploy from 10.0.0.5 port 51234 ssh2",
        "2024-05-01T14:30:01+0000 web1 systemd[1]: Started Session 5 of user root.",
    ],
    "nginx-error": [
        "2024/05/01 14:30:00 [error] 1234#1234: *5 connect() failed (111: Connection refused) while connecting "
        'to upstream, client: 10.0.0.1, server: example.com, request: "GET / HTTP/1.1"',
        "2024/05/01 14:30:02 [warn] 1234#1234: *7 an upstream response is buffered to a temporary file",
    ],
    "apache-error": [
        "[Sun Dec 04 04:47:44 2005] [error] mod_jk child workerEnv in error state 6",
        "[Wed Oct 11 14:32:52.123456 2000] [core:error] [pid 35708:tid 4328636416] [client 72.15.99.187] "
        "File does not exist: /usr/local/apache2/htdocs/favicon.ico",
    ],
    "python": [
        "2024-05-01 14:30:00,123 - app.db - ERROR - connection lost",
        "WARNING:root:disk almost full",
    ],
    "logcat": [
        "03-17 16:13:38.811  1702  2395 D WindowManager: printFreezingDisplayLogsopening app wtoken = null",
        "03-17 16:13:38.819  1702  8671 E PowerManagerService: acquire lock=233570404, flags=0x1",
    ],
    "timestamp-level": [
        "2015-10-18 18:01:47,978 INFO [main] org.apache.hadoop.mapreduce.v2.app.MRAppMaster: Created MRAppMaster",
        "2015-07-29 17:41:44,747 - WARN  [QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181:FastLeaderElection@774] - Notification time out: 3200",
        "17/06/09 20:10:40 ERROR executor.CoarseGrainedExecutorBackend: RECEIVED SIGNAL 15: SIGTERM",
    ],
    "redis": [
        "1234:M 01 May 2024 14:30:00.123 * Ready to accept connections tcp",
        "1234:M 01 May 2024 14:31:00.000 # WARNING overcommit_memory is set to 0!",
    ],
    "timestamp-pipes": [
        "20171223-22:15:29:606|Step_LSC|30002312|onStandStepChanged 3579",
        "2024-05-01 14:30:00.123 | ERROR    | app.main:run:42 - worker crashed",
    ],
    "json": [
        '{"time":"2024-05-01T14:30:00Z","level":"error","msg":"db timeout","attempt":3}',
        '{"__REALTIME_TIMESTAMP":"1714573800123456","PRIORITY":"6","MESSAGE":"Started Session 5 of user root."}',
        '{"log":"GET / 200\\n","stream":"stdout","time":"2024-05-01T14:30:00.123456789Z"}',
    ],
    "plain": [
        "just a message without any header",
        "another one: value 42",
    ],
}


@pytest.mark.parametrize("fmt", sorted(SAMPLES))
def test_each_format_is_detected_from_its_lines(fmt):
    assert detect(SAMPLES[fmt]).name == fmt


def _recs(lines):
    return list(records(lines, time_parser=TimeParser(reference=UTC_2024_05_01_1430 + 86400 * 30)))


def test_rfc5424_splits_structured_data_and_priority():
    r = _recs(SAMPLES["rfc5424"])
    assert r[0].message == "An application event log entry"
    assert r[0].level == "info"  # 165 % 8 == 5, notice
    assert r[1].message == "'su root' failed for lonvick on /dev/pts/8"
    assert r[1].level == "error"  # 34 % 8 == 2, critical
    assert r[0].time == pytest.approx(calendar.timegm((2003, 10, 11, 22, 14, 15, 0, 0, 0)) + 0.003)


def test_rfc3164_with_and_without_priority():
    r = _recs(SAMPLES["rfc3164"])
    assert r[0].message == "'su root' failed for lonvick on /dev/pts/8" and r[0].level == "error"
    assert r[1].message.startswith("authentication failure;") and r[1].level is None
    assert r[2].message == "last message repeated 2 times"
    assert all(x.time is not None for x in r)


def test_rfc3164_iso_timestamps_with_zones():
    r = _recs(SAMPLES["rfc3164-iso"])
    assert r[0].message.startswith("Accepted publickey")
    assert r[0].time == pytest.approx(UTC_2024_05_01_1430 + 0.123456)
    assert r[1].time == pytest.approx(UTC_2024_05_01_1430 + 1)


def test_nginx_error_log():
    r = _recs(SAMPLES["nginx-error"])
    assert r[0].level == "error" and r[0].message.startswith("connect() failed (111: Connection refused)")
    assert r[1].level == "warning"


def test_apache_error_log_both_versions():
    r = _recs(SAMPLES["apache-error"])
    assert r[0].message == "mod_jk child workerEnv in error state 6" and r[0].level == "error"
    assert r[1].message.startswith("[client 72.15.99.187] File does not exist") and r[1].level == "error"


def test_python_logging_defaults():
    r = _recs(SAMPLES["python"])
    assert (r[0].message, r[0].level) == ("connection lost", "error")
    assert (r[1].message, r[1].level) == ("disk almost full", "warning")


def test_logcat_strips_the_tag():
    r = _recs(SAMPLES["logcat"])
    assert r[0].message.startswith("printFreezingDisplayLogsopening") and r[0].level == "debug"
    assert r[1].level == "error"


def test_timestamp_level_forms():
    r = _recs(SAMPLES["timestamp-level"])
    assert r[0].message.startswith("org.apache.hadoop") and r[0].level == "info"
    assert r[1].message == "Notification time out: 3200" and r[1].level == "warning"
    assert r[2].message.startswith("executor.CoarseGrainedExecutorBackend: RECEIVED") and r[2].level == "error"
    assert all(x.time is not None for x in r)


def test_pipe_separated_headers():
    r = _recs(SAMPLES["timestamp-pipes"])
    assert r[0].message == "onStandStepChanged 3579"
    assert r[1].message == "worker crashed" and r[1].level == "error"


def test_json_lines_fields():
    r = _recs(SAMPLES["json"])
    assert (r[0].message, r[0].level) == ("db timeout", "error")
    assert r[0].time == pytest.approx(UTC_2024_05_01_1430)
    assert (r[1].message, r[1].level) == ("Started Session 5 of user root.", "info")
    assert r[1].time == pytest.approx(1714573800.123456)
    assert r[2].message == "GET / 200"


def test_journal_export_one_record_per_entry():
    lines = [
        "__CURSOR=s=abc;i=1",
        "__REALTIME_TIMESTAMP=1714573800123456",
        "PRIORITY=3",
        "_SYSTEMD_UNIT=nginx.service",
        "MESSAGE=nginx: [emerg] bind() to 0.0.0.0:80 failed (98: Address already in use)",
        "",
        "__CURSOR=s=abc;i=2",
        "__REALTIME_TIMESTAMP=1714573801000000",
        "PRIORITY=6",
        "MESSAGE=Started nginx.service.",
        "",
    ]
    assert detect(lines).name == "journal-export"
    r = _recs(lines)
    assert [x.message for x in r] == [lines[4][len("MESSAGE="):], "Started nginx.service."]
    assert [x.line for x in r] == [5, 10]
    assert r[0].level == "error" and r[0].time == pytest.approx(1714573800.123456)


def test_continuation_lines_keep_the_previous_time():
    lines = [
        "2024-05-01 14:30:00,123 ERROR [main] app: request failed",
        "Traceback (most recent call last):",
        '  File "app.py", line 3, in <module>',
        "2024-05-01 14:30:05,000 INFO [main] app: recovered",
    ]
    r = _recs(lines)
    assert r[1].message == "Traceback (most recent call last):"
    assert r[1].time == r[0].time and r[2].time == r[0].time
    assert r[1].level is None


def test_detection_is_per_input_and_needs_a_majority():
    mixed = SAMPLES["plain"] * 3 + SAMPLES["python"][:1]
    assert detect(mixed).name == "plain"
    assert detect([]).name == "plain"


def test_plain_lines_are_the_message():
    r = _recs(SAMPLES["plain"])
    assert [x.message for x in r] == SAMPLES["plain"] and all(x.time is None for x in r)


@pytest.mark.parametrize(
    ("value", "level"),
    [("ERROR", "error"), ("crit", "error"), ("Warn", "warning"), ("notice", "info"), ("TRACE", "debug"),
     ("E", "error"), (3, "error"), (4, "warning"), ("6", "info"), (50, "error"), (30, "info"), ("bogus", None)],
)
def test_levels_are_normalised(value, level):
    assert normalise_level(value) == level


@pytest.mark.parametrize(
    ("line", "message", "level"),
    [
        ("2024-05-01 14:30:00.123 UTC [1234] LOG:  checkpoint starting: time", "checkpoint starting: time", "info"),
        ("2024-05-01 14:30:05.001 UTC [1240] ERROR:  integer out of range", "integer out of range", "error"),
        ("2024-05-01T14:30:00.123456Z 0 [Warning] [MY-010068] [Server] CA certificate ca.pem is self signed.",
         "[Server] CA certificate ca.pem is self signed.", "warning"),
        ("2024-05-01 14:30:00 0 [Note] InnoDB: Buffer pool(s) load completed", "InnoDB: Buffer pool(s) load completed", "info"),
        ("[01-May-2024 14:30:00] WARNING: [pool www] server reached pm.max_children setting (5), consider raising it",
         "server reached pm.max_children setting (5), consider raising it", "warning"),
        ("2024-05-01 14:30:00,123 INFO spawned: 'app' with pid 123", "spawned: 'app' with pid 123", "info"),
    ],
)
def test_common_server_logs(line, message, level):
    (r,) = _recs([line])
    assert (r.message, r.level) == (message, level) and r.time is not None


def test_utc_suffix_is_a_zone():
    (r,) = _recs(["2024-05-01 14:30:00.000 UTC [1] LOG:  x"])
    assert r.time == pytest.approx(UTC_2024_05_01_1430)


def test_implausible_times_are_ignored():
    tp = TimeParser(reference=UTC_2024_05_01_1430)
    assert tp.parse("2024-05-01T14:30:00Z") == UTC_2024_05_01_1430
    assert tp.parse("2099-01-01T00:00:00Z") is None
    assert tp.parse("1970-01-02 00:00:00") is None


def test_yearless_times_take_the_year_before_when_in_the_future():
    tp = TimeParser(reference=UTC_2024_05_01_1430)
    jan = tp.parse("Jan 10 10:00:00")
    dec = tp.parse("Dec 31 23:59:59")
    assert time.localtime(jan).tm_year == 2024 and time.localtime(dec).tm_year == 2023
