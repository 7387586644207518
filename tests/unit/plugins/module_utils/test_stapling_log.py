# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Stapling diagnosis from error logs (stapling_log): ErrorLog discovery, the code table, scanning and the report."""

from __future__ import annotations

import datetime
import os

import pytest

from ansible_collections.fleet.stapling.plugins.module_utils import stapling_log
from ansible_collections.fleet.stapling.plugins.module_utils.apache_config import parse_config
from ansible_collections.fleet.stapling.plugins.module_utils.stapling_log import (
    STAPLING_CODES,
    ConfigNames,
    LogSource,
    StaplingLogError,
    Window,
    discover_error_logs,
    report,
    scan_log,
)

NOW = datetime.datetime(2026, 11, 22, 12, 0, 0)
SSL_VHOST = """<VirtualHost *:443>
ServerName %(name)s
SSLEngine on
SSLCertificateFile /srv/%(name)s.pem
%(extra)s
</VirtualHost>
"""


def config_of(tmp_path, server_lines, vhosts=(), server_root=None):
    """A main config with ``server_lines`` and SSL vhosts given as (name, extra lines) pairs."""
    main = tmp_path / "httpd.conf"
    body = "\n".join(server_lines) + "\n"
    body += "".join(SSL_VHOST % {"name": name, "extra": extra} for name, extra in vhosts)
    main.write_text(body)
    return parse_config(str(main), server_root=str(server_root or tmp_path), environment={})


def by_path(sources):
    return dict((source.path, source) for source in sources)


def stamp(seconds_ago, micro=0):
    when = NOW - datetime.timedelta(seconds=seconds_ago)
    return "[%s.%06d %d]" % (when.strftime("%a %b %d %H:%M:%S"), micro, when.year)


def window(since="1h", recent="15m"):
    return Window.parse(NOW, since, recent)


def scanned(tmp_path, lines, since="1h", recent="15m", name="error_log", rotated=False, max_bytes=1 << 20):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    scan = scan_log(LogSource(str(path)), window(since, recent), max_bytes, rotated)
    return scan, report([scan], window(since, recent))


def code_entry(result, code):
    return next(entry for entry in result["codes"] if entry["code"] == code)


# ------------------------------------------------------------------ ErrorLog discovery


def test_server_error_log_relative_to_server_root_and_vhosts_without_own_log(tmp_path):
    config = config_of(tmp_path, ['ErrorLog "logs/error_log"'], [("a.test", ""), ("b.test", "")])
    sources = discover_error_logs(config)
    assert [source.path for source in sources] == [str(tmp_path / "logs" / "error_log")]
    assert sources[0].vhosts == ["a.test", "b.test"]
    assert sources[0].declared_by == [{"file": str(tmp_path / "httpd.conf"), "line": 1, "scope": "server",
                                       "vhost": None}]
    assert sources[0].origin == "config"


def test_server_root_directive_decides_relative_paths(tmp_path):
    config = config_of(tmp_path, ["ServerRoot /etc/httpd", "ErrorLog logs/error_log"])
    assert [source.path for source in discover_error_logs(config)] == ["/etc/httpd/logs/error_log"]


def test_vhost_with_its_own_error_log(tmp_path):
    config = config_of(tmp_path, ["ErrorLog /var/log/httpd/error_log"],
                       [("a.test", "ErrorLog /var/log/httpd/a_error_log"), ("b.test", "")])
    sources = by_path(discover_error_logs(config))
    assert sources["/var/log/httpd/error_log"].vhosts == ["b.test"]
    own = sources["/var/log/httpd/a_error_log"]
    assert own.vhosts == ["a.test"]
    assert own.declared_by[0]["scope"] == "vhost" and own.declared_by[0]["vhost"] == "a.test"


def test_vhosts_sharing_one_log_give_one_entry(tmp_path):
    config = config_of(tmp_path, ["ErrorLog /var/log/main"],
                       [("a.test", "ErrorLog /var/log/shared"), ("b.test", "ErrorLog /var/log/shared")])
    shared = by_path(discover_error_logs(config))["/var/log/shared"]
    assert shared.vhosts == ["a.test", "b.test"]
    assert len(shared.declared_by) == 2


def test_variables_are_expanded_by_the_parser(tmp_path):
    config = config_of(tmp_path, ["Define LOGS /var/log/apache2", "ErrorLog ${LOGS}/error.log"])
    assert [source.path for source in discover_error_logs(config)] == ["/var/log/apache2/error.log"]


def test_piped_logger_is_reported_unreadable_with_why(tmp_path):
    config = config_of(tmp_path, ['ErrorLog "|/usr/bin/rotatelogs /var/log/httpd/error_log.%Y%m%d 86400"'])
    source = discover_error_logs(config)[0]
    assert source.kind == "piped"
    assert source.path == "|/usr/bin/rotatelogs /var/log/httpd/error_log.%Y%m%d 86400"
    scan = scan_log(source, window(), 1000)
    assert not scan.readable
    assert "piped to a program" in scan.reason and "logs" in scan.reason


@pytest.mark.parametrize("value", ["syslog", "syslog:local7"])
def test_syslog_is_reported_unreadable_with_why(tmp_path, value):
    source = discover_error_logs(config_of(tmp_path, ["ErrorLog " + value]))[0]
    assert (source.kind, source.path) == ("syslog", value)
    scan = scan_log(source, window(), 1000)
    assert not scan.readable and "syslog" in scan.reason


def test_missing_log_file_is_reported(tmp_path):
    source = discover_error_logs(config_of(tmp_path, ["ErrorLog logs/nothing_here"]))[0]
    scan = scan_log(source, window(), 1000)
    assert not scan.readable
    assert scan.reason.startswith("does not exist")
    result = report([scan], window())
    assert result["summary"]["unreadable_logs"] == [str(tmp_path / "logs" / "nothing_here")]
    assert any("not read" in warning for warning in result["warnings"])


def test_a_directory_is_no_log(tmp_path):
    scan = scan_log(LogSource(str(tmp_path)), window(), 1000)
    assert not scan.readable and scan.reason == "not a regular file"


def test_without_error_log_apache_default_is_used(tmp_path):
    source = discover_error_logs(config_of(tmp_path, []))[0]
    assert source.path == str(tmp_path / "logs" / "error_log")
    assert source.origin == "default"
    assert discover_error_logs(config_of(tmp_path, []), "logs/other_log")[0].path == str(tmp_path / "logs/other_log")


def test_only_ssl_vhosts_are_counted(tmp_path):
    config = config_of(tmp_path, ["ErrorLog /var/log/main"], [("tls.test", "")])
    (tmp_path / "plain.conf").write_text("<VirtualHost *:80>\nServerName plain.test\nErrorLog /var/log/plain\n"
                                         "</VirtualHost>\n")
    main = tmp_path / "httpd.conf"
    main.write_text(main.read_text() + "Include %s\n" % (tmp_path / "plain.conf"))
    config = parse_config(str(main), environment={})
    sources = discover_error_logs(config)
    assert [source.path for source in sources] == ["/var/log/main"]
    assert sources[0].vhosts == ["tls.test"]


def test_explicit_logs_are_added_once_and_relative_to_server_root(tmp_path):
    sources = discover_error_logs(config_of(tmp_path, ["ErrorLog /var/log/main"]))
    merged = stapling_log.add_explicit_logs(sources, ["/var/log/main", "logs/extra", "/var/log/other"], "/srv/root")
    assert [(source.path, source.origin) for source in merged] == [
        ("/var/log/main", "config"), ("/srv/root/logs/extra", "option"), ("/var/log/other", "option")]


# ------------------------------------------------------------------ the code table


def test_every_code_in_the_table_is_complete():
    for code, entry in STAPLING_CODES.items():
        assert code.startswith("AH") and len(code) == 7, code
        assert entry["phase"] in stapling_log.PHASES, code
        assert entry["level"] in ("emerg", "alert", "crit", "error", "warn", "notice", "info", "debug"), code
        for field in ("meaning", "cause", "remedy"):
            assert len(entry[field]) > 20, (code, field)


def test_the_table_covers_both_runbooks_and_their_neighbours():
    runbooks = {"AH01941", "AH01985", "AH01974", "AH02217", "AH02235", "AH02218"}
    neighbours = {"AH01972", "AH01977", "AH01980", "AH01944", "AH02814", "AH02815", "AH02567", "AH02604", "AH01934",
                  "AH01935", "AH01936", "AH02969", "AH01958", "AH01959", "AH10177", "AH01988"}
    assert runbooks | neighbours <= set(STAPLING_CODES)


def test_remedies_say_what_the_runbooks_say():
    unreachable = STAPLING_CODES["AH01974"]["remedy"]
    assert "ping6" in unreachable and "IPv6" in unreachable and "firewall" in unreachable
    assert "switch stapling off for that CA's sites" in unreachable
    assert "intermediate" in STAPLING_CODES["AH02217"]["remedy"]
    assert "SSLResponderTimeout" not in STAPLING_CODES["AH01985"]["remedy"]
    assert "SSLStaplingResponderTimeout" in STAPLING_CODES["AH01985"]["remedy"]
    assert "SSLSessionCache" in STAPLING_CODES["AH01958"]["remedy"]


def test_code_table_lists_every_code_sorted():
    table = stapling_log.code_table()
    assert [entry["code"] for entry in table] == sorted(STAPLING_CODES)
    assert set(table[0]) == {"code", "level", "phase", "meaning", "cause", "remedy"}


# ------------------------------------------------------------------ scanning and the report


def test_counts_times_responder_and_reason_of_a_responder_outage(tmp_path):
    lines = [
        stamp(600) + " [ssl:error] [pid 10:tid 11] (111)Connection refused: [client 127.0.0.1:6] AH01974: could not "
        "connect to OCSP responder '127.0.0.1:8801'",
        stamp(600, 50) + " [ssl:error] [pid 10:tid 11] AH01941: stapling_renew_response: responder error",
        stamp(60) + " [ssl:error] [pid 10:tid 12] (111)Connection refused: [client 127.0.0.1:7] AH01974: could not "
        "connect to OCSP responder '127.0.0.1:8801'",
        stamp(60, 50) + " [ssl:error] [pid 10:tid 12] AH01941: stapling_renew_response: responder error",
    ]
    scan, result = scanned(tmp_path, lines)
    assert result["summary"]["counts"] == {"AH01974": 2, "AH01941": 2}
    assert result["summary"]["stapling_errors_recent"] and result["summary"]["responder_errors_recent"]
    assert result["summary"]["responders"] == ["127.0.0.1:8801"]
    refused = code_entry(result, "AH01974")
    assert refused["reasons"] == ["(111) Connection refused"]
    assert refused["first_seen"].startswith("2026-11-22T11:50:00")
    assert refused["last_seen"].startswith("2026-11-22T11:59:00")
    assert refused["remedy"] == STAPLING_CODES["AH01974"]["remedy"]
    assert refused["logs"] == [scan.source.path]
    # AH01941 names no responder itself: it takes the one its fetch connected to
    assert code_entry(result, "AH01941")["responders"] == ["127.0.0.1:8801"]
    responder = result["responders"][0]
    assert (responder["name"], responder["count"], responder["codes"]) == ("127.0.0.1:8801", 4, ["AH01974", "AH01941"])
    assert result["summary"]["last_error"]["code"] == "AH01941"
    assert "AH01974 x2" in result["summary"]["message"]


def test_runbook_lines_name_the_responder_in_typographic_quotes(tmp_path):
    lines = [stamp(30) + u" [ssl:error] [pid 40752] (101)Network is unreachable: [client 121.240.38.40:5858] AH01974: "
             u"could not connect to OCSP responder \u2018ocsp.comodoca.com\u2019"]
    result = scanned(tmp_path, lines)[1]
    assert result["summary"]["responders"] == ["ocsp.comodoca.com"]
    assert code_entry(result, "AH01974")["reasons"] == ["(101) Network is unreachable"]


def test_resolve_failure_names_the_bare_host(tmp_path):
    lines = [stamp(30) + " [ssl:error] [pid 1:tid 2] (-3)Temporary failure in name resolution: AH01972: could not "
             "resolve address of OCSP responder ocsp.example-ca.test"]
    assert scanned(tmp_path, lines)[1]["summary"]["responders"] == ["ocsp.example-ca.test"]


def test_a_responder_is_not_lent_to_another_thread_or_after_the_fetch_ended(tmp_path):
    lines = [
        stamp(90) + " [ssl:error] [pid 1:tid 2] AH01974: could not connect to OCSP responder 'a.test:80'",
        stamp(90) + " [ssl:error] [pid 1:tid 2] AH01941: stapling_renew_response: responder error",
        stamp(80) + " [ssl:error] [pid 1:tid 3] AH01977: failed reading line from OCSP server",
        stamp(70) + " [ssl:error] [pid 1:tid 2] AH01985: error reading response from OCSP server",
    ]
    result = scanned(tmp_path, lines)[1]
    assert code_entry(result, "AH01977")["responders"] == []
    assert code_entry(result, "AH01985")["responders"] == []


def test_hang_lines_of_one_fetch_share_the_debug_connect_line_responder(tmp_path):
    lines = [
        stamp(5) + " [ssl:debug] [pid 1:tid 2] ssl_util_ocsp.c(99): [client 1.2.3.4:5] AH01973: connecting to OCSP "
        "responder 'ocsp.test:80'",
        stamp(2) + " [ssl:error] [pid 1:tid 2] (70007)The timeout specified has expired: [client 1.2.3.4:5] AH01977: "
        "failed reading line from OCSP server",
        stamp(2) + " [ssl:error] [pid 1:tid 2] [client 1.2.3.4:5] AH01980: bad response from OCSP server: (none)",
        stamp(2) + " [ssl:error] [pid 1:tid 2] AH01941: stapling_renew_response: responder error",
    ]
    result = scanned(tmp_path, lines)[1]
    for code in ("AH01977", "AH01980", "AH01941"):
        assert code_entry(result, code)["responders"] == ["ocsp.test:80"], code
    assert code_entry(result, "AH01973")["levels"] == ["debug"]


def test_certificate_setup_lines_lend_each_other_certificate_and_vhost(tmp_path):
    lines = [
        stamp(100) + " [ssl:error] [pid 7:tid 7] AH02217: ssl_stapling_init_cert: can't retrieve issuer certificate! "
        "[subject: CN=shop.test,O=x / issuer: CN=CA,O=x / serial: 0A1B / notbefore: Nov 21 11:36:28 2026 GMT / "
        "notafter: Feb 20 11:36:28 2027 GMT]",
        stamp(100) + " [ssl:error] [pid 7:tid 7] AH02604: Unable to configure certificate shop.test:443:0 for stapling",
    ]
    result = scanned(tmp_path, lines)[1]
    issuer = code_entry(result, "AH02217")
    assert issuer["vhosts"] == ["shop.test:443"]
    assert issuer["certificates"] == [{"subject": "CN=shop.test,O=x", "issuer": "CN=CA,O=x", "serial": "0A1B",
                                       "vhosts": []}]
    assert code_entry(result, "AH02604")["certificates"][0]["serial"] == "0A1B"
    assert result["summary"]["vhosts"] == ["shop.test"]
    assert result["summary"]["stapling_errors_recent"]
    assert not result["summary"]["responder_errors_recent"]


def test_shared_certificate_without_url_names_the_server(tmp_path):
    lines = [stamp(10) + " [ssl:error] [pid 7:tid 7] AH02814: ssl_stapling_init_cert: no OCSP URI in certificate and "
             "no SSLStaplingForceURL configured for server b.test:443 [subject: CN=a.test / issuer: CN=CA / serial: "
             "01 / notbefore: x / notafter: y]"]
    assert code_entry(scanned(tmp_path, lines)[1], "AH02814")["vhosts"] == ["b.test:443"]


def test_revoked_certificate_is_no_responder_failure_and_its_serial_maps_to_the_vhost(tmp_path):
    lines = [stamp(10) + " [ssl:error] [pid 1:tid 2] AH02969: stapling_check_response: response has certificate "
             "status revoked (reason: keyCompromise) for serial number 0011D5C4"]
    scan = scanned(tmp_path, lines)[0]
    known = ConfigNames([{"server_name": "revoked.test", "certificate": {"serial": "11D5C4", "ocsp_url": None}}])
    result = report([scan], window(), known)
    assert code_entry(result, "AH02969")["certificates"][0]["vhosts"] == ["revoked.test"]
    assert result["summary"]["vhosts"] == ["revoked.test"]
    assert result["summary"]["stapling_errors_recent"]
    assert not result["summary"]["responder_errors_recent"]


def test_garbage_answer_collects_openssl_details(tmp_path):
    lines = [
        stamp(5) + " [ssl:error] [pid 1:tid 2] [client 127.0.0.1:5] AH01988: failed to decode OCSP response data",
        stamp(5) + " [ssl:error] [pid 1:tid 2] SSL Library Error: error:068000A8:asn1 encoding routines::wrong tag",
        stamp(5) + " [ssl:error] [pid 1:tid 2] AH01941: stapling_renew_response: responder error",
    ]
    result = scanned(tmp_path, lines)[1]
    assert code_entry(result, "AH01988")["details"] == [
        "SSL Library Error: error:068000A8:asn1 encoding routines::wrong tag"]
    assert result["summary"]["counts"] == {"AH01988": 1, "AH01941": 1}


def test_library_errors_join_only_the_stapling_line_right_before_them(tmp_path):
    lines = [
        stamp(50) + " [ssl:error] [pid 1:tid 2] AH01988: failed to decode OCSP response data",
        stamp(50) + " [ssl:error] [pid 1:tid 2] AH02008: SSL library error 1 in handshake (server x:443)",
        stamp(50) + " [ssl:error] [pid 1:tid 2] SSL Library Error: error:0A000416:SSL routines::certificate unknown",
        stamp(5) + " [ssl:error] [pid 1:tid 3] AH01988: failed to decode OCSP response data",
        stamp(1) + " [ssl:error] [pid 1:tid 3] SSL Library Error: error:0A000416:SSL routines::much later",
    ]
    assert code_entry(scanned(tmp_path, lines)[1], "AH01988")["details"] == []


def test_lines_without_pid_lend_nothing(tmp_path):
    lines = [
        stamp(10) + " [ssl:error] AH01974: could not connect to OCSP responder 'a.test:80'",
        stamp(10) + " [ssl:error] AH01941: stapling_renew_response: responder error",
    ]
    result = scanned(tmp_path, lines)[1]
    assert code_entry(result, "AH01974")["responders"] == ["a.test:80"]
    assert code_entry(result, "AH01941")["responders"] == []


def test_since_excludes_older_lines(tmp_path):
    lines = [
        stamp(7200) + " [ssl:error] [pid 1:tid 2] AH01941: stapling_renew_response: responder error",
        stamp(1800) + " [ssl:error] [pid 1:tid 2] AH01941: stapling_renew_response: responder error",
    ]
    result = scanned(tmp_path, lines, since="1h")[1]
    assert result["summary"]["counts"] == {"AH01941": 1}
    assert not result["summary"]["stapling_errors_recent"]
    assert scanned(tmp_path, lines, since="3h")[1]["summary"]["counts"] == {"AH01941": 2}
    assert scanned(tmp_path, lines, since="2026-11-22T11:20:00")[1]["summary"]["counts"] == {"AH01941": 1}


def test_recent_reaches_further_than_since_for_the_flag_only(tmp_path):
    lines = [stamp(1200) + " [ssl:error] [pid 1:tid 2] AH01941: stapling_renew_response: responder error"]
    result = scanned(tmp_path, lines, since="5m", recent="30m")[1]
    assert result["summary"]["counts"] == {}
    assert result["summary"]["recent_counts"] == {"AH01941": 1}
    assert result["summary"]["stapling_errors_recent"]
    assert code_entry(result, "AH01941")["count"] == 0


def test_debug_and_warn_codes_do_not_raise_the_flag(tmp_path):
    lines = [stamp(5) + " [ssl:debug] [pid 1:tid 2] AH10177: OCSP stapling added via hook",
             stamp(5) + " [ssl:warn] [pid 1:tid 2] AH01948: Failed to acquire OCSP stapling-refresh lock"]
    result = scanned(tmp_path, lines)[1]
    assert result["summary"]["counts"] == {"AH10177": 1, "AH01948": 1}
    assert not result["summary"]["stapling_errors_recent"]


def test_level_comes_from_the_table_when_the_format_has_none(tmp_path):
    lines = ["%s AH01941: stapling_renew_response: responder error" % (NOW - datetime.timedelta(seconds=5)).isoformat(
        sep=" ")]
    result = scanned(tmp_path, lines)[1]
    assert code_entry(result, "AH01941")["levels"] == ["error"]
    assert result["summary"]["responder_errors_recent"]


def test_other_codes_unparsed_and_untimed_lines_are_counted_not_reported(tmp_path):
    lines = [
        stamp(5) + " [mpm_event:notice] [pid 1:tid 1] AH00489: Apache/2.4.71 configured -- resuming normal operations",
        "PHP Warning:  something odd",
        "   continuation",
        "[ssl:error] [pid 40742] AH01941: stapling_renew_response: responder error",
        "",
    ]
    scan, result = scanned(tmp_path, lines)
    log = result["logs"][0]
    assert (log["lines"], log["unparsed_lines"], log["untimed_lines"]) == (4, 2, 1)
    assert result["codes"] == []
    assert result["summary"]["unparsed_lines"] == 2
    assert any("carry no time" in warning for warning in result["warnings"])
    assert scan.readable


def test_rotated_log_is_read_first_with_rotated(tmp_path):
    (tmp_path / "error_log.1").write_text(
        stamp(1500) + " [ssl:error] [pid 1:tid 2] AH01974: could not connect to OCSP responder 'old.test'\n")
    lines = [stamp(10) + " [ssl:error] [pid 1:tid 2] AH01974: could not connect to OCSP responder 'new.test'"]
    without = scanned(tmp_path, lines)[1]
    assert without["summary"]["responders"] == ["new.test"]
    scan, with_rotated = scanned(tmp_path, lines, rotated=True)
    assert with_rotated["summary"]["responders"] == ["new.test", "old.test"]
    assert [os.path.basename(entry["path"]) for entry in scan.files] == ["error_log.1", "error_log"]


def test_a_missing_rotated_file_is_fine(tmp_path):
    scan = scanned(tmp_path, [stamp(10) + " [ssl:error] AH01941: x"], rotated=True)[0]
    assert scan.readable and len(scan.files) == 1


def test_a_tail_that_does_not_reach_back_to_since_is_flagged(tmp_path):
    lines = [stamp(3000 - number) + " [ssl:error] [pid 1:tid 2] AH01941: stapling_renew_response: responder error"
             for number in range(2000)]
    scan, result = scanned(tmp_path, lines, max_bytes=4096)
    assert not scan.covers_window
    assert result["logs"][0]["covers_since"] is False
    assert any("raise max_bytes" in warning for warning in result["warnings"])
    assert result["summary"]["counts"]["AH01941"] < 100
    assert scanned(tmp_path, lines, since="5m", max_bytes=4096)[0].covers_window


def test_per_log_codes_leave_out_the_table_texts(tmp_path):
    result = scanned(tmp_path, [stamp(10) + " [ssl:error] [pid 1] AH01941: x"])[1]
    entry = result["logs"][0]["codes"]["AH01941"]
    assert entry["count"] == 1 and "remedy" not in entry


def test_codes_are_listed_most_recent_first(tmp_path):
    lines = [stamp(100) + " [ssl:error] [pid 1] AH01985: error reading response from OCSP server",
             stamp(10) + " [ssl:error] [pid 1] AH01941: stapling_renew_response: responder error"]
    assert [entry["code"] for entry in scanned(tmp_path, lines)[1]["codes"]] == ["AH01941", "AH01985"]


def test_nothing_found_reads_as_such(tmp_path):
    result = scanned(tmp_path, [stamp(5) + " [core:notice] [pid 1] AH00094: Command line: 'httpd'"])[1]
    summary = result["summary"]
    assert summary["counts"] == {} and summary["responders"] == [] and summary["last_error"] is None
    assert not summary["stapling_errors_recent"]
    assert summary["message"].startswith("no stapling messages since ")


# ------------------------------------------------------------------ names from the config's certificates


def test_config_names_map_responders_and_serials_to_vhosts():
    known = ConfigNames([
        {"server_name": "a.test", "force_url": None, "certificate": {"ocsp_url": "http://127.0.0.1:8801/", "serial": "1F"}},
        {"server_name": "b.test", "force_url": None, "certificate": {"ocsp_url": "http://ocsp.ca.test", "serial": "2"}},
        {"server_name": "c.test", "force_url": "http://ocsp.ca.test:8080/x", "certificate": None},
        {"server_name": "d.test", "force_url": None, "certificate": None},
    ])
    assert known.vhosts_of_responder("127.0.0.1:8801") == ["a.test"]
    assert known.vhosts_of_responder("ocsp.ca.test") == ["b.test", "c.test"]  # AH01972 names the bare host
    assert known.vhosts_of_responder("ocsp.ca.test:8080") == ["c.test"]
    assert known.vhosts_of_responder("http://ocsp.ca.test:80/") == ["b.test"]
    assert known.vhosts_of_responder("elsewhere.test:80") == []
    assert known.vhosts_serving("001F") == ["a.test"]
    assert known.vhosts_serving("00:1f") == ["a.test"]
    assert known.vhosts_serving(None) == []


# ------------------------------------------------------------------ the whole run


def params(**given):
    values = {"discover": False, "logs": [], "since": "1h", "recent": "15m", "max_bytes": 1 << 20, "rotated": False,
              "ctl": None, "config_file": None, "server_root": None}
    values.update(given)
    return values


def no_run(command):
    raise AssertionError("no command should run: %r" % (command,))


def test_diagnose_reads_given_logs_without_the_config(tmp_path):
    path = tmp_path / "error_log"
    path.write_text(stamp(5) + " [ssl:error] [pid 1] AH01941: stapling_renew_response: responder error\n")
    result = stapling_log.diagnose(params(logs=[str(path)]), no_run, NOW)
    assert result["summary"]["counts"] == {"AH01941": 1}
    assert result["config_file"] is None
    assert result["logs"][0]["origin"] == "option"


@pytest.mark.parametrize("given, words", [
    (dict(since="yesterday"), "since: 'yesterday' is neither a duration"),
    (dict(recent="soon"), "recent: 'soon'"),
    (dict(max_bytes=0), "max_bytes must be a positive"),
    (dict(), "no log to read"),
])
def test_diagnose_refuses_bad_input_with_a_message(given, words):
    with pytest.raises(StaplingLogError) as raised:
        stapling_log.diagnose(params(**given), no_run, NOW)
    assert words in str(raised.value)


def test_diagnose_discovers_the_logs_of_the_config(tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "error_log").write_text(
        stamp(5) + " [ssl:error] [pid 1:tid 1] AH01974: could not connect to OCSP responder 'x.test:80'\n")
    config = tmp_path / "httpd.conf"
    config.write_text("ServerRoot %s\nErrorLog logs/error_log\n" % tmp_path)

    def run(command):
        return 0, "Server version: Apache/2.4.62 (Unix)\n -D HTTPD_ROOT=\"%s\"\n" % tmp_path, ""

    result = stapling_log.diagnose(params(discover=True, ctl="httpd", config_file=str(config)), run, NOW,
                                   read_certificates=False)
    assert result["apache_version"] == "2.4.62"
    assert result["server_root"] == str(tmp_path)
    assert result["summary"]["responders"] == ["x.test:80"]
    assert result["logs"][0]["declared_by"][0]["line"] == 2
