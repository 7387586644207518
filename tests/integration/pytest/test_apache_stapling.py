"""apache_stapling and apache_stapling_info on the lab's real Apache hosts, in the Debian, RHEL and cPanel layouts.

Each test drives a module through ansible-playbook, then checks what an operator would check: the bytes of every
file under the ServerRoot, ``apachectl -t``, and after the host's reload what ``openssl s_client -status`` gets.
Every host a test changes is put back to its pristine config and restarted afterwards (the ``host`` fixture).
"""

from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path

import pytest
from conftest import expected_staples
from server_root import snapshot

HOSTS = ("web1", "web2", "web3")
MUST_STAPLE_HOSTS = ("web1", "web3")  # secure-alpha on web1 (CA alpha), secure-beta on web3 (CA beta)
RESPONDER_HOSTNAMES = {"alpha": "127.0.0.1", "beta": "localhost"}
STAPLING_LINE = re.compile(rb"^[ \t]*SSLUseStapling[ \t]+(on|off)\r?\n$", re.IGNORECASE)
TYPOGRAPHIC_QUOTE = "\u201c"
LATIN1_COMMENT = b"# r\xe9sum\xe9 of the site owner, written in Latin-1"
# The file that decides stapling for www-alpha in each layout (cPanel's is a userdata include with CRLF).
WWW_ALPHA_STAPLING_FILE = {
    "debian": "sites-available/www-alpha.{name}.lab.test.conf",
    "rhel": "conf.d/ssl.conf",
    "cpanel": "conf/userdata/ssl/2_4/user0/www-alpha.{name}.lab.test/stapling.conf",
}


# ---------------------------------------------------------------- files


def changed_entries(before: dict, after: dict) -> set[str]:
    return {path for path in set(before) | set(after) if before.get(path) != after.get(path)}


def changed_lines(old: bytes, new: bytes) -> list[bytes]:
    """The lines a change removed or added, with their line endings."""
    old_lines, new_lines = old.splitlines(True), new.splitlines(True)
    lines = []
    for tag, old_start, old_end, new_start, new_end in difflib.SequenceMatcher(None, old_lines, new_lines).get_opcodes():
        if tag != "equal":
            lines += old_lines[old_start:old_end] + new_lines[new_start:new_end]
    return lines


def line_endings(data: bytes) -> list[bytes]:
    return [line[len(line.rstrip(b"\r\n")):] for line in data.splitlines(True)]


def relative_real_paths(server_root: Path, paths: list[str]) -> set[str]:
    """Reported paths (Debian's may be sites-enabled symlinks) as the files really written, relative to the root."""
    return {str(Path(os.path.realpath(path)).relative_to(server_root)) for path in paths}


def config_files(server_root: Path) -> list[Path]:
    entries = snapshot(server_root)
    return [server_root / path for path, entry in entries.items()
            if entry[0] == "file" and path.endswith((".conf", ".load"))]


def rewrite_lines(server_root: Path, pattern: bytes, replacement: bytes) -> list[Path]:
    """Edit by hand, as an operator would: re.sub on every matching line of every real config file."""
    edited = []
    for path in config_files(server_root):
        data = path.read_bytes()
        new = re.sub(pattern, replacement, data, flags=re.MULTILINE)
        if new != data:
            path.write_bytes(new)
            edited.append(path)
    assert edited, f"no line matching {pattern!r} under {server_root}"
    return edited


def remove_lines(server_root: Path, directive: bytes) -> list[Path]:
    return rewrite_lines(server_root, rb"^[ \t]*" + directive + rb"[ \t].*\n", b"")


def unload_socache_shmcb(host: dict) -> None:
    root = Path(host["server_root"])
    if host["layout"] == "debian":
        (root / "mods-enabled" / "socache_shmcb.load").unlink()  # what a2dismod does
    else:
        remove_lines(root, rb"LoadModule socache_shmcb_module")


def paste_typographic_cache_line(host: dict) -> Path:
    """SSLStaplingCache with the quotes a word processor makes, where the operator would edit it."""
    root = Path(host["server_root"])
    if host["layout"] == "cpanel":
        # cPanel regenerates httpd.conf: hand edits go to the global include, which overrides its cache
        include = root / "conf/includes/pre_virtualhost_global.conf"
        line = f"SSLStaplingCache {TYPOGRAPHIC_QUOTE}shmcb:{root}/run/stapling_cache(128000){TYPOGRAPHIC_QUOTE}\n"
        include.write_bytes(include.read_bytes() + line.encode())
        return include
    quote = TYPOGRAPHIC_QUOTE.encode()
    (edited,) = rewrite_lines(root, rb"^([ \t]*SSLStaplingCache[ \t]+)(\S+)", rb"\1" + quote + rb"\2" + quote)
    return edited


def write_failing_ctl(directory: Path, host: dict, message: str) -> Path:
    """A ctl that is the host's real one for -V and -M, but whose config test fails with ``message``."""
    script = directory / "apachectl-failing-t"
    script.write_text(
        "#!/bin/sh\n"
        'for arg in "$@"; do\n'
        f'    if [ "$arg" = "-t" ]; then echo "{message}" >&2; exit 1; fi\n'
        "done\n"
        f'exec {host["ctl"]} "$@"\n'
    )
    script.chmod(0o755)
    return script


# ---------------------------------------------------------------- what clients see


def assert_clients_see(fleet, name: str, expected: dict[str, str | None]) -> None:
    seen = fleet.staples_until(name, expected)
    for server_name, wanted in expected.items():
        check = seen[server_name]
        assert check.handshake_ok, f"{server_name}: handshake failed:\n{check.output}"
        status = check.cert_status if check.stapled else None
        assert status == wanted, f"{server_name}: expected staple {wanted}, got {status}:\n{check.output}"


def server_names(host: dict, **conditions) -> set[str]:
    return {v["server_name"] for v in host["vhosts"] if all(v[key] == value for key, value in conditions.items())}


def names_of(vhost_ids: list[str]) -> set[str]:
    """'www-alpha.web1.lab.test (/path:2)' -> 'www-alpha.web1.lab.test'."""
    return {vhost_id.split(" ", 1)[0] for vhost_id in vhost_ids}


def assert_succeeded(result: dict) -> None:
    assert not result.get("failed"), f"module failed: {result.get('msg')}\n{result['playbook_output']}"


def assert_failed_cleanly(result: dict) -> str:
    """A failed task with an operator's message and no Python traceback anywhere; returns the message."""
    assert result.get("failed") is True, json.dumps(result, indent=2)
    assert result.get("msg"), json.dumps(result, indent=2)
    assert "module_stderr" not in result and "module_stdout" not in result, json.dumps(result, indent=2)
    everything = json.dumps(result)
    assert "Traceback" not in everything and "File \\\"" not in everything, everything
    return result["msg"]


# ---------------------------------------------------------------- apache_stapling_info


@pytest.fixture(scope="module")
def pristine_info(fleet):
    return fleet.info(list(HOSTS))


@pytest.mark.parametrize("host_name", HOSTS)
def test_info_reports_every_ssl_vhost_with_its_certificate_and_stapling(fleet, pristine_info, host_name):
    host = fleet.host(host_name)
    result = pristine_info[host_name]
    assert_succeeded(result)
    assert result["changed"] is False
    assert re.fullmatch(r"2\.4\.\d+", result["apache_version"])
    assert result["config_file"] == host["config_file"]
    instance = result["instance"]
    assert (instance["layout"], instance["config_file"]) == (host["layout"], host["config_file"]), instance
    assert instance["reload_command"] == f"{instance['ctl']} graceful", instance  # no cPanel script in the lab
    assert result["server"]["stapling_cache_module_loaded"] is True
    assert result["server"]["ssl_module_loaded"] is True
    reported = {v["server_name"]: v for v in result["vhosts"]}
    assert set(reported) == server_names(host)
    for vhost in host["vhosts"]:
        facts = reported[vhost["server_name"]]
        certificate = facts["certificate"]
        assert facts["certificate_error"] is None
        assert facts["aliases"] == [vhost["alias"]]
        assert facts["stapling"] is True, facts
        if vhost["kind"] == "no-ocsp-url":
            assert certificate["ocsp_url"] is None
        else:
            port = fleet.lab.state["responders"][vhost["ca"]]["port"]
            assert certificate["ocsp_url"] == f"http://{RESPONDER_HOSTNAMES[vhost['ca']]}:{port}/"
        assert certificate["must_staple"] is vhost["server_name"].startswith("secure-")
        assert certificate["issuer_found"] is True
        decider = facts["stapling_directive"]
        deciding_line = Path(decider["file"]).read_text().splitlines()[decider["line"] - 1]
        assert deciding_line.lower().split() == ["sslusestapling", "on"], (decider, deciding_line)


# ---------------------------------------------------------------- disabling


@pytest.mark.parametrize("host_name", HOSTS)
def test_disable_everything_stops_every_staple_and_changes_only_stapling_lines(fleet, host):
    root = Path(host["server_root"])
    before = snapshot(root)

    result = fleet.stapling(host["name"], state="disabled", force=True)

    assert_succeeded(result)
    assert result["changed"] is True
    assert {change["vhost"].split(" ", 1)[0] for change in result["vhost_changes"]} == server_names(host)
    assert result["vhosts_stapling"] == []
    after = snapshot(root)
    changed = changed_entries(before, after)
    assert changed == relative_real_paths(root, result["changed_files"])
    for path in changed:
        assert path in before and path in after, f"{path} was created or removed"
        assert before[path][0] == after[path][0] == "file", path
        assert before[path][2] == after[path][2], f"{path}: mode changed"
        lines = changed_lines(before[path][1], after[path][1])
        assert lines and all(STAPLING_LINE.match(line) for line in lines), (path, lines)
    if host["layout"] == "cpanel":
        assert "conf/httpd.conf" not in changed  # cPanel regenerates it; the override goes to an include

    fleet.reload(host["name"])
    assert_clients_see(fleet, host["name"], expected_staples(host, switched_off=server_names(host)))

    again = fleet.stapling(host["name"], state="disabled", force=True)
    assert_succeeded(again)
    assert (again["changed"], again["changed_files"]) == (False, [])


@pytest.mark.parametrize("host_name", MUST_STAPLE_HOSTS)
def test_disable_without_force_refuses_must_staple_vhosts_and_writes_nothing(fleet, host):
    root = Path(host["server_root"])
    before = snapshot(root)
    (must_staple,) = server_names(host, kind="must-staple")

    result = fleet.stapling(host["name"], state="disabled")

    message = assert_failed_cleanly(result)
    assert must_staple in message
    assert "force" in message
    assert snapshot(root) == before


@pytest.mark.parametrize("host_name", HOSTS)
def test_disable_by_ocsp_host_switches_off_only_that_cas_vhosts(fleet, host):
    alpha = server_names(host, ca="alpha")
    # web1's Must-Staple vhost is one of CA alpha's, so only there does the operator need force
    force = bool(alpha & server_names(host, kind="must-staple"))

    result = fleet.stapling(host["name"], state="disabled", ocsp_hosts=["127.0.0.1"], force=force)

    assert_succeeded(result)
    assert result["changed"] is True
    assert names_of(result["selected_vhosts"]) == alpha
    assert {change["vhost"].split(" ", 1)[0] for change in result["vhost_changes"]} == alpha
    fleet.reload(host["name"])
    assert_clients_see(fleet, host["name"], expected_staples(host, switched_off=alpha))


@pytest.mark.parametrize("host_name", ["web2"])
@pytest.mark.parametrize("ocsp_host, expected_ca", [("localhost:{beta}", "beta"), ("127.0.0.1:1", None)])
def test_ocsp_host_with_a_port_selects_only_that_responder(fleet, host, ocsp_host, expected_ca):
    ports = {ca: record["port"] for ca, record in fleet.lab.state["responders"].items()}
    expected = {v["server_name"] for v in host["vhosts"] if v["ca"] == expected_ca and v["kind"] != "no-ocsp-url"}

    result = fleet.stapling(host["name"], check=True, state="disabled", ocsp_hosts=[ocsp_host.format(**ports)])

    assert_succeeded(result)
    assert names_of(result["selected_vhosts"]) == expected
    assert result["changed"] is bool(expected)
    if not expected:
        assert any("no SSL vhost matches" in warning for warning in result.get("warnings", [])), result


@pytest.mark.parametrize("host_name", HOSTS)
def test_disable_by_name_glob_switches_off_only_matching_vhosts(fleet, host):
    www_beta = {f"www-beta.{host['name']}.lab.test"}

    result = fleet.stapling(host["name"], state="disabled", vhosts=["www-beta.*"])

    assert_succeeded(result)
    assert result["changed"] is True
    assert names_of(result["selected_vhosts"]) == www_beta
    fleet.reload(host["name"])
    assert_clients_see(fleet, host["name"], expected_staples(host, switched_off=www_beta))
    again = fleet.stapling(host["name"], state="disabled", vhosts=["www-beta.*"])
    assert_succeeded(again)
    assert (again["changed"], again["changed_files"]) == (False, [])


# ---------------------------------------------------------------- enabling


@pytest.mark.parametrize("host_name", HOSTS)
def test_enable_after_disable_staples_good_again(fleet, host):
    assert_succeeded(fleet.stapling(host["name"], state="disabled", force=True))
    fleet.reload(host["name"])
    assert_clients_see(fleet, host["name"], expected_staples(host, switched_off=server_names(host)))

    result = fleet.stapling(host["name"], state="enabled")

    assert_succeeded(result)
    assert result["changed"] is True
    # every vhost whose certificate names a responder staples; new-beta (no OCSP URL) stays off in its own scope
    off = server_names(host) - names_of(result["vhosts_stapling"])
    assert off == server_names(host, kind="no-ocsp-url") == names_of(result["off_without_url"]), result
    fleet.reload(host["name"])
    assert_clients_see(fleet, host["name"], expected_staples(host))
    again = fleet.stapling(host["name"], state="enabled")
    assert_succeeded(again)
    assert (again["changed"], again["changed_files"]) == (False, [])


@pytest.mark.parametrize("host_name", HOSTS)
def test_enable_adds_a_stapling_cache_beside_the_session_cache_when_removed_by_hand(fleet, host):
    root = Path(host["server_root"])
    remove_lines(root, b"SSLStaplingCache")

    result = fleet.stapling(host["name"], state="enabled")

    assert_succeeded(result)
    assert result["changed"] is True
    assert any("added SSLStaplingCache" in warning for warning in result.get("warnings", [])), result
    server = result["stapling"]["server"]
    session_directory = os.path.dirname(server["session_cache"].split(":", 1)[1])
    assert server["stapling_cache"].startswith(f"shmcb:{os.path.join(session_directory, 'ssl_stapling')}(")
    assert server["stapling_cache_module_loaded"] is True
    configtest = fleet.configtest(host["name"])
    assert configtest.returncode == 0, configtest.stderr
    fleet.reload(host["name"])  # without a cache httpd would die here (AH01958)
    assert_clients_see(fleet, host["name"], expected_staples(host))


@pytest.mark.parametrize("host_name", HOSTS)
def test_enable_without_the_socache_module_of_the_cache_fails_naming_it_and_writes_nothing(fleet, host):
    unload_socache_shmcb(host)
    before = snapshot(Path(host["server_root"]))

    result = fleet.stapling(host["name"], state="enabled")

    message = assert_failed_cleanly(result)
    assert "socache_shmcb" in message
    assert snapshot(Path(host["server_root"])) == before


@pytest.mark.parametrize("host_name", ["web2"])
def test_enable_refuses_a_derived_cache_whose_socache_module_is_not_loaded(fleet, host):
    root = Path(host["server_root"])
    # passes -t, yet httpd would die at the next reload: stapling on, no cache, and no socache_shmcb to add one
    unload_socache_shmcb(host)
    remove_lines(root, b"SSLStaplingCache")
    remove_lines(root, b"SSLSessionCache")
    assert fleet.configtest(host["name"]).returncode == 0
    before = snapshot(root)

    result = fleet.stapling(host["name"], state="enabled")

    message = assert_failed_cleanly(result)
    assert "socache_shmcb" in message
    assert snapshot(root) == before


# ---------------------------------------------------------------- check mode


DISABLE_ALL = {"state": "disabled", "force": True}


@pytest.mark.parametrize("host_name, options, remove_cache", [
    pytest.param("web1", DISABLE_ALL, False, id="web1-disable"),
    pytest.param("web2", DISABLE_ALL, False, id="web2-disable"),
    pytest.param("web3", DISABLE_ALL, False, id="web3-disable"),
    # new lines with a derived value: the server default and the cache, after the session cache
    pytest.param("web1", {"state": "enabled"}, True, id="web1-enable-deriving-the-cache"),
])
def test_check_mode_diff_is_exactly_what_a_real_run_writes(fleet, host, options, remove_cache):
    root = Path(host["server_root"])
    if remove_cache:
        remove_lines(root, b"SSLStaplingCache")
    before = snapshot(root)

    checked = fleet.stapling(host["name"], check=True, diff=True, **options)

    assert_succeeded(checked)
    assert checked["changed"] is True
    assert checked["diff"] and "SSLUseStapling" in checked["playbook_output"]
    assert snapshot(root) == before

    applied = fleet.stapling(host["name"], diff=True, **options)

    assert_succeeded(applied)
    assert applied["changed_files"] == checked["changed_files"]
    assert sorted(d["after_header"] for d in checked["diff"]) == checked["changed_files"]
    for planned in checked["diff"]:
        if planned["after"].startswith("symlink to "):  # the conf-enabled link of a new settings file
            assert os.readlink(planned["after_header"]) + "\n" == planned["after"][len("symlink to "):]
            assert planned["before"] == ""
            continue
        assert Path(planned["after_header"]).read_bytes().decode("utf-8", "replace") == planned["after"]
        relative = str(Path(os.path.realpath(planned["before_header"])).relative_to(root))
        assert before.get(relative, ("absent", b""))[1].decode("utf-8", "replace") == planned["before"]
    assert checked["diff"] == applied["diff"]


# ---------------------------------------------------------------- rollback


@pytest.mark.parametrize("host_name, options", [
    pytest.param("web1", {"force": True}, id="web1-all"),
    pytest.param("web2", {"force": True}, id="web2-all"),
    pytest.param("web3", {"force": True}, id="web3-all"),
    # on cPanel this creates a userdata include in a new directory, which the rollback must remove
    pytest.param("web3", {"vhosts": ["www-beta.*"]}, id="web3-new-userdata-include"),
])
def test_failing_configtest_restores_every_byte_and_reports_httpds_words(fleet, host, options, tmp_path):
    root = Path(host["server_root"])
    complaint = "AH00526: Syntax error injected by the integration test"
    failing_ctl = write_failing_ctl(tmp_path, host, complaint)
    before = snapshot(root)

    result = fleet.stapling(host["name"], state="disabled", ctl=str(failing_ctl), **options)

    message = assert_failed_cleanly(result)
    assert complaint in message
    assert "restored" in message
    assert snapshot(root) == before  # no changed byte, no temp file, no new directory
    fleet.reload(host["name"])
    assert_clients_see(fleet, host["name"], expected_staples(host))


# ---------------------------------------------------------------- bytes the edits must keep


@pytest.mark.parametrize("host_name", HOSTS)
def test_enable_fixes_typographic_quotes_with_a_warning(fleet, host):
    pasted_into = paste_typographic_cache_line(host)
    pasted = pasted_into.read_bytes()
    assert fleet.configtest(host["name"]).returncode != 0  # httpd reads the quotes as part of the cache name

    result = fleet.stapling(host["name"], state="enabled")

    assert_succeeded(result)
    assert result["changed"] is True
    assert any("typographic quotes" in warning for warning in result.get("warnings", [])), result
    fixed = pasted_into.read_bytes()
    assert TYPOGRAPHIC_QUOTE.encode() not in fixed
    (pasted_line,) = [line for line in pasted.splitlines(True) if TYPOGRAPHIC_QUOTE.encode() in line]
    lines = changed_lines(pasted, fixed)
    rewritten = [line for line in lines if line != pasted_line and not STAPLING_LINE.match(line)]
    assert pasted_line in lines
    assert [line.split()[0] for line in rewritten] == [b"SSLStaplingCache"], lines
    configtest = fleet.configtest(host["name"])
    assert configtest.returncode == 0, configtest.stderr
    fleet.reload(host["name"])
    assert_clients_see(fleet, host["name"], expected_staples(host))


@pytest.mark.parametrize("host_name", ["web2"])
def test_disable_fixes_typographic_quotes_around_sslusestapling_and_switches_it_off(fleet, host):
    quote = TYPOGRAPHIC_QUOTE.encode()
    (ssl_conf,) = rewrite_lines(Path(host["server_root"]), rb"^(SSLUseStapling[ \t]+)on$", rb"\1" + quote + b"on" + quote)
    assert fleet.configtest(host["name"]).returncode != 0

    result = fleet.stapling(host["name"], state="disabled")
    assert_succeeded(result)
    assert any("typographic quotes" in warning for warning in result.get("warnings", [])), result
    assert re.search(rb"^SSLUseStapling[ \t]+off$", ssl_conf.read_bytes(), re.MULTILINE), ssl_conf.read_text()
    fleet.reload(host["name"])
    assert_clients_see(fleet, host["name"], expected_staples(host, switched_off=server_names(host)))


@pytest.mark.parametrize("host_name", ["web1"])
def test_typographic_quote_fix_changes_only_the_quotes_and_keeps_variables(fleet, host):
    pasted_into = paste_typographic_cache_line(host)
    pasted = pasted_into.read_bytes()
    quote = TYPOGRAPHIC_QUOTE.encode()
    (pasted_line,) = [line for line in pasted.splitlines(True) if quote in line]
    assert b"${APACHE_RUN_DIR}" in pasted_line

    assert_succeeded(fleet.stapling(host["name"], state="enabled"))

    fixed = pasted_into.read_bytes()
    assert pasted_line.replace(quote, b"") in fixed.splitlines(True), fixed.decode(errors="replace")


@pytest.mark.parametrize("host_name", HOSTS)
def test_disable_keeps_line_endings_and_latin1_bytes_of_the_edited_file(fleet, host):
    path = Path(host["server_root"]) / WWW_ALPHA_STAPLING_FILE[host["layout"]].format(name=host["name"])
    original = path.read_bytes()
    newline = b"\r\n" if original.endswith(b"\r\n") else b"\n"
    if host["layout"] == "cpanel":
        assert newline == b"\r\n"  # the lab's userdata include is written with CRLF
    with_comment = LATIN1_COMMENT + newline + original
    path.write_bytes(with_comment)

    result = fleet.stapling(host["name"], state="disabled", force=True)

    assert_succeeded(result)
    edited = path.read_bytes()
    assert edited != with_comment
    assert all(STAPLING_LINE.match(line) for line in changed_lines(with_comment, edited))
    assert edited.startswith(LATIN1_COMMENT + newline)
    assert line_endings(edited) == line_endings(with_comment)


@pytest.mark.parametrize("host_name", HOSTS)
def test_backup_keeps_a_copy_of_each_changed_file_with_its_original_bytes(fleet, host):
    root = Path(host["server_root"])
    before = snapshot(root)

    result = fleet.stapling(host["name"], state="disabled", force=True, backup=True)

    assert_succeeded(result)
    backups = result["backups"]
    assert relative_real_paths(root, list(backups)) == relative_real_paths(root, result["changed_files"])
    for original, backup in backups.items():
        relative = str(Path(os.path.realpath(original)).relative_to(root))
        assert Path(backup).read_bytes() == before[relative][1]
        assert Path(original).read_bytes() != before[relative][1]
    configtest = fleet.configtest(host["name"])
    assert configtest.returncode == 0, configtest.stderr  # the backups are not read as config


@pytest.mark.parametrize("host_name", ["web1"])
def test_debian_sites_enabled_stay_symlinks_and_the_available_file_changes(fleet, host):
    root = Path(host["server_root"])
    before = snapshot(root)
    links = {path: entry[1] for path, entry in before.items() if path.startswith("sites-enabled/")}
    assert links and all(before[path][0] == "link" for path in links)

    result = fleet.stapling(host["name"], state="disabled", force=True)

    assert_succeeded(result)
    after = snapshot(root)
    for path, target in links.items():
        assert after[path] == ("link", target)
        available = (root / "sites-enabled" / target).resolve().relative_to(root)
        assert str(available).startswith("sites-available/")
        assert after[str(available)] != before[str(available)]
        assert b"SSLUseStapling off" in after[str(available)][1]


# ---------------------------------------------------------------- bad input


MODULE_RUNNERS = {
    "apache_stapling": lambda fleet, name, **options: fleet.stapling(name, state="disabled", force=True, **options),
    "apache_stapling_info": lambda fleet, name, **options: fleet.info([name], **options)[name],
}


@pytest.mark.parametrize("module", sorted(MODULE_RUNNERS))
@pytest.mark.parametrize("host_name", ["web2"])
def test_missing_config_file_fails_naming_it(fleet, host, module):
    missing = f"{host['server_root']}/conf/no-such-httpd.conf"

    result = MODULE_RUNNERS[module](fleet, host["name"], config_file=missing)

    assert missing in assert_failed_cleanly(result)


@pytest.mark.parametrize("module", sorted(MODULE_RUNNERS))
@pytest.mark.parametrize("host_name", ["web2"])
def test_missing_ctl_fails_naming_it(fleet, host, module):
    missing = f"{host['server_root']}/bin/no-such-apachectl"

    result = MODULE_RUNNERS[module](fleet, host["name"], ctl=missing)

    assert missing in assert_failed_cleanly(result)


@pytest.mark.parametrize("module", sorted(MODULE_RUNNERS))
@pytest.mark.parametrize("host_name", ["web2"])
def test_unclosed_virtualhost_in_an_included_file_fails_naming_file_and_line(fleet, host, module):
    broken = Path(host["server_root"]) / "conf.d" / "zz-half-written.conf"
    broken.write_text("# a site someone was still writing\n\n<VirtualHost 127.0.0.1:443>\n    ServerName x.test\n")

    result = MODULE_RUNNERS[module](fleet, host["name"])

    message = assert_failed_cleanly(result)
    assert str(broken) in message
    assert re.search(r"(line 3\b|:3\b)", message), message
