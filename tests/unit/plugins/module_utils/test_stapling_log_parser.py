# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The error-log line parser, time windows and the tail reader (apache_error_log)."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.fleet.stapling.plugins.module_utils import apache_error_log
from ansible_collections.fleet.stapling.plugins.module_utils.apache_error_log import (
    ErrorLogError,
    parse_duration,
    parse_line,
    parse_since,
    read_tail,
)

# Verbatim from the incident runbook (cPanel, responder unreachable), typographic quotes included; two of its
# lines lost their timestamps when they were pasted.
RUNBOOK_RENEW = "[Thu May 02 03:06:38.713291 2019] [ssl:error] [pid 16491] AH01941: stapling_renew_response: responder error"
RUNBOOK_TIMEOUT = ("[Thu May 02 03:06:38.713219 2019] [ssl:error] [pid 16491] (70007)The timeout specified has expired: "
                   "[client 104.131.103.14:38624] AH01985: error reading response from OCSP server")
RUNBOOK_RENEW_UNTIMED = "[ssl:error] [pid 40742] AH01941: stapling_renew_response: responder error"
RUNBOOK_UNREACHABLE = (u"[ssl:error] [pid 40752] (101)Network is unreachable: [client 121.240.38.40:5858] AH01974: "
                       u"could not connect to OCSP responder \u2018ocsp.comodoca.com\u2019")
# Verbatim from the set-up guide (issuer missing), with [pid N:tid M].
GUIDE_ISSUER = ("[Fri Jan 08 23:36:44.055900 2021] [ssl:error] [pid 1491:tid 139921007208320] AH02217: "
                "ssl_stapling_init_cert: Can't retrieve issuer certificate!")
GUIDE_SERVER_CERT = ("[Fri Jan 08 23:36:44.056018 2021] [ssl:error] [pid 1491:tid 139921007208320] AH02235: "
                     "Unable to configure server certificate for stapling")
# What the lab's Apache 2.4 logs (responder down, hanging, sending garbage; certificate without OCSP URL).
LAB_REFUSED = ("[Sun Nov 22 11:36:33.827239 2026] [ssl:error] [pid 26667:tid 26672] (111)Connection refused: "
               "[client 127.0.0.1:60714] AH01974: could not connect to OCSP responder '127.0.0.1:21880'")
LAB_HANG = ("[Sun Nov 22 11:36:40.144119 2026] [ssl:error] [pid 26948:tid 26951] (70007)The timeout specified has "
            "expired: [client 127.0.0.1:60734] AH01977: failed reading line from OCSP server")
LAB_BAD_REPLY = ("[Sun Nov 22 11:36:40.144166 2026] [ssl:error] [pid 26948:tid 26951] [client 127.0.0.1:60734] "
                 "AH01980: bad response from OCSP server: (none)")
LAB_LIBRARY = ("[Sun Nov 22 11:36:41.296769 2026] [ssl:error] [pid 27324:tid 27328] SSL Library Error: "
               "error:068000A8:asn1 encoding routines::wrong tag")
LAB_NO_URL = ("[Sun Nov 22 11:36:28.717436 2026] [ssl:error] [pid 26326:tid 26326] AH02218: ssl_stapling_init_cert: no "
              "OCSP URI in certificate and no SSLStaplingForceURL set [subject: CN=new-beta.web1.lab.test,O=fleetlab / "
              "issuer: CN=fleetlab beta intermediate CA,O=fleetlab / serial: 2B20A847D7EB130EA4F8DDE070FD0B4B81B0F697 / "
              "notbefore: Nov 21 11:36:28 2026 GMT / notafter: Feb 20 11:36:28 2027 GMT]")
LAB_NOTICE = ("[Sun Nov 22 11:36:28.730316 2026] [mpm_event:notice] [pid 26327:tid 26327] AH00489: Apache/2.4.71 "
              "(Debian) OpenSSL/3.0.22 configured -- resuming normal operations")

NOW = datetime.datetime(2026, 11, 22, 12, 0, 0)


def test_runbook_line_with_microseconds_and_bare_pid():
    line = parse_line(RUNBOOK_RENEW)
    assert line.time == datetime.datetime(2019, 5, 2, 3, 6, 38, 713291)
    assert (line.module, line.level, line.pid, line.tid) == ("ssl", "error", 16491, None)
    assert line.code == "AH01941"
    assert line.message == "stapling_renew_response: responder error"
    assert line.is_error


def test_errno_prefix_and_client_are_split_from_the_message():
    line = parse_line(RUNBOOK_TIMEOUT)
    assert line.errno == 70007
    assert line.reason == "(70007) The timeout specified has expired"
    assert line.client == "104.131.103.14:38624"
    assert line.code == "AH01985"
    assert line.message == "error reading response from OCSP server"


def test_a_line_without_time_still_parses_and_has_no_time():
    line = parse_line(RUNBOOK_RENEW_UNTIMED)
    assert line.time is None
    assert (line.level, line.pid, line.code) == ("error", 40742, "AH01941")


def test_typographic_quotes_stay_in_the_message():
    line = parse_line(RUNBOOK_UNREACHABLE)
    assert line.reason == "(101) Network is unreachable"
    assert line.code == "AH01974"
    assert line.message.endswith(u"\u2018ocsp.comodoca.com\u2019")


def test_pid_and_tid():
    line = parse_line(GUIDE_ISSUER)
    assert (line.pid, line.tid) == (1491, 139921007208320)
    assert line.time == datetime.datetime(2021, 1, 8, 23, 36, 44, 55900)
    assert line.code == "AH02217"
    assert parse_line(GUIDE_SERVER_CERT).code == "AH02235"


@pytest.mark.parametrize("text, reason, code", [
    (LAB_REFUSED, "(111) Connection refused", "AH01974"),
    (LAB_HANG, "(70007) The timeout specified has expired", "AH01977"),
    (LAB_BAD_REPLY, None, "AH01980"),
])
def test_lab_lines(text, reason, code):
    line = parse_line(text)
    assert (line.reason, line.code, line.client) == (reason, code, "127.0.0.1:60714" if code == "AH01974" else
                                                     "127.0.0.1:60734")
    assert line.time.year == 2026


def test_lab_line_keeps_the_certificate_details_in_the_message():
    line = parse_line(LAB_NO_URL)
    assert line.code == "AH02218"
    assert "[subject: CN=new-beta.web1.lab.test,O=fleetlab / issuer:" in line.message


def test_lines_without_code_parse_with_code_none():
    library = parse_line(LAB_LIBRARY)
    assert library.code is None
    assert library.message.startswith("SSL Library Error: error:068000A8")
    notice = parse_line(LAB_NOTICE)
    assert (notice.module, notice.level, notice.code) == ("mpm_event", "notice", "AH00489")
    assert not notice.is_error


def test_seconds_only_time_of_the_plain_t_format():
    line = parse_line("[Thu May 02 03:06:38 2019] [ssl:warn] [pid 7] AH01909: something")
    assert line.time == datetime.datetime(2019, 5, 2, 3, 6, 38)
    assert line.level == "warn"


def test_apache_22_format_with_a_bare_level():
    line = parse_line("[Thu May 02 03:06:38 2019] [error] [client 1.2.3.4] File does not exist: /srv/favicon.ico")
    assert (line.module, line.level, line.client, line.code) == (None, "error", "1.2.3.4", None)


@pytest.mark.parametrize("stamp", ["2019-05-02 03:06:38.713291", "[2019-05-02 03:06:38.713291]"])
def test_compact_iso_times_with_or_without_brackets(stamp):
    line = parse_line(stamp + " [ssl:error] [pid 1] AH01941: stapling_renew_response: responder error")
    assert line.time == datetime.datetime(2019, 5, 2, 3, 6, 38, 713291)
    assert line.code == "AH01941"


def test_compact_iso_time_without_fraction():
    assert parse_line("[2019-05-02 03:06:38] [ssl:error] AH01941: x").time == datetime.datetime(2019, 5, 2, 3, 6, 38)


def test_a_time_with_a_zone_is_converted_to_local_time():
    line = parse_line("[2019-05-02T03:06:38Z] [ssl:error] AH01941: x")
    expected = apache_error_log.to_local(datetime.datetime(2019, 5, 2, 3, 6, 38, tzinfo=datetime.timezone.utc))
    assert line.time == expected


def test_server_name_field_of_an_errorlogformat_with_v():
    line = parse_line("[Thu May 02 03:06:38.713291 2019] [ssl:error] [pid 1:tid 2] [shop.example.com:443] "
                      "AH01941: stapling_renew_response: responder error")
    assert line.server == "shop.example.com:443"
    assert line.code == "AH01941"


def test_debug_source_location_is_skipped():
    line = parse_line("[Thu May 02 03:06:38.713291 2019] [ssl:debug] [pid 1:tid 2] ssl_util_ocsp.c(105): "
                      "[client 1.2.3.4:5] AH01973: connecting to OCSP responder 'ocsp.example.com'")
    assert (line.level, line.client, line.code) == ("debug", "1.2.3.4:5", "AH01973")
    assert line.message == "connecting to OCSP responder 'ocsp.example.com'"


def test_unknown_bracket_fields_are_kept():
    line = parse_line("[Thu May 02 03:06:38 2019] [ssl:error] [pid 1] [log-id WzQ] AH01941: x")
    assert line.fields == ["log-id WzQ"]
    assert line.code == "AH01941"


def test_a_message_that_starts_with_a_code_parses_without_time_or_level():
    line = parse_line("AH00558: apache2: Could not reliably determine the server's fully qualified domain name")
    assert (line.time, line.level, line.code) == (None, None, "AH00558")


@pytest.mark.parametrize("text", [
    "",
    "   at some continuation of a stack trace",
    "PHP Warning:  something in /srv/index.php on line 3",
    "[not a time] but no level either",
    "Sun Nov 22 11:36:28 2026 a time without brackets is not Apache's",
])
def test_lines_that_are_no_error_log_lines_give_none(text):
    assert parse_line(text) is None


def test_carriage_return_is_dropped():
    assert parse_line(RUNBOOK_RENEW + "\r\n").message == "stapling_renew_response: responder error"


def test_impossible_dates_are_no_times():
    assert apache_error_log.parse_log_time("Thu Feb 31 03:06:38 2019") is None
    assert apache_error_log.parse_log_time("Thu Foo 02 03:06:38 2019") is None


# ------------------------------------------------------------------ durations and since


@pytest.mark.parametrize("text, seconds", [
    ("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86400), ("1w", 604800), ("1h30m", 5400), ("45", 45),
    (" 2H ", 7200),
])
def test_durations(text, seconds):
    assert parse_duration(text) == datetime.timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "abc", "15 minutes", "-5m", "1.5h", "m15"])
def test_things_that_are_no_durations(text):
    assert parse_duration(text) is None


def test_since_as_a_duration_counts_back_from_now():
    assert parse_since("15m", NOW) == datetime.datetime(2026, 11, 22, 11, 45)


def test_since_as_a_local_iso_time():
    assert parse_since("2026-11-22T03:06:38", NOW) == datetime.datetime(2026, 11, 22, 3, 6, 38)
    assert parse_since("2026-11-22 03:06:38.5", NOW) == datetime.datetime(2026, 11, 22, 3, 6, 38, 500000)
    assert parse_since("2026-11-22", NOW) == datetime.datetime(2026, 11, 22)


def test_since_with_a_zone_becomes_local_time():
    aware = datetime.datetime(2026, 11, 22, 3, 6, 38, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    assert parse_since("2026-11-22T03:06:38+02:00", NOW) == apache_error_log.to_local(aware)
    assert parse_since("2026-11-22T03:06:38+0200", NOW) == apache_error_log.to_local(aware)


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", "2026-11-22T25:00", "15 minutes"])
def test_bad_since_names_the_option_and_the_forms(text):
    with pytest.raises(ErrorLogError) as raised:
        parse_since(text, NOW, "since")
    assert str(raised.value).startswith("since: ")
    assert "15m" in str(raised.value) and "ISO-8601" in str(raised.value)


def test_iso_local_gives_an_offset():
    text = apache_error_log.iso_local(datetime.datetime(2026, 11, 22, 12, 0))
    assert text.startswith("2026-11-22T12:00:00")
    assert text[-6] in "+-"
    assert apache_error_log.iso_local(None) is None


# ------------------------------------------------------------------ the tail reader


class _CountingFile(object):
    """A file object that records how many bytes were read from it."""

    def __init__(self, handle, counter):
        self._handle = handle
        self._counter = counter

    def read(self, size=-1):
        data = self._handle.read(size)
        self._counter.append(len(data))
        return data

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._handle.close()


def _big_log(path, lines):
    with open(path, "w") as handle:
        for number in range(lines):
            handle.write("[Sun Nov 22 11:36:28.000000 2026] [ssl:error] [pid 1:tid 1] AH01941: line %08d\n" % number)


def test_the_tail_reader_reads_no_more_than_max_bytes(tmp_path, monkeypatch):
    path = tmp_path / "error_log"
    _big_log(path, 50000)  # about 4.4 MB
    size = path.stat().st_size
    max_bytes = 64 * 1024
    counter = []
    real_open = open
    monkeypatch.setattr(apache_error_log, "open",
                        lambda name, mode="r": _CountingFile(real_open(name, mode), counter), raising=False)
    tail = read_tail(str(path), max_bytes)
    assert sum(counter) <= max_bytes
    assert tail.bytes_read == sum(counter)
    assert size > 60 * max_bytes
    assert tail.truncated and tail.offset == size - max_bytes
    # only whole lines from the end: the last one, and none from the start
    assert tail.lines[-1].endswith("line 00049999")
    assert all(line.startswith("[Sun Nov 22") for line in tail.lines)
    first_number = int(tail.lines[0].rsplit(" ", 1)[1])
    assert first_number > 49000
    assert len(tail.lines) == 50000 - first_number


def test_the_tail_reader_reads_a_small_file_whole(tmp_path):
    path = tmp_path / "error_log"
    _big_log(path, 3)
    tail = read_tail(str(path), 4 * 1024 * 1024)
    assert not tail.truncated
    assert [line.rsplit(" ", 1)[1] for line in tail.lines] == ["00000000", "00000001", "00000002"]


def test_the_tail_reader_keeps_a_last_line_without_newline_and_splits_only_on_newlines(tmp_path):
    path = tmp_path / "error_log"
    path.write_bytes(b"one\r\ntwo \x0c form feed\nthree")
    assert read_tail(str(path), 1000).lines == ["one", "two \x0c form feed", "three"]


def test_the_tail_reader_replaces_bytes_that_are_no_utf8(tmp_path):
    path = tmp_path / "error_log"
    path.write_bytes(b"caf\xe9\n")
    assert read_tail(str(path), 1000).lines == [u"caf\ufffd"]


def test_a_tail_inside_one_long_line_gives_no_lines(tmp_path):
    path = tmp_path / "error_log"
    path.write_bytes(b"x" * 5000)
    assert read_tail(str(path), 100).lines == []


def test_max_bytes_must_be_positive(tmp_path):
    path = tmp_path / "error_log"
    path.write_text("x\n")
    with pytest.raises(ErrorLogError):
        read_tail(str(path), 0)
