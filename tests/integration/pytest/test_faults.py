"""Validate-then-reload under faults: the incident playbooks on hosts where something else is broken.

Each run puts a different fault on web1 and web2 and leaves web3 healthy. A faulty host must fail with the
message of whatever refused (Apache's config test, the kernel), keep every byte under its ServerRoot, keep the
same master serving the old config, and not be reloaded; web3 must be switched as if nothing happened elsewhere.
The figures go to docs/reliability.md.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from conftest import expected_staples, record_reliability
from playbook_runs import (
    assert_clients_see,
    assert_reloaded,
    assert_report_consistent,
    assert_untouched,
    fleet_state,
    names_of,
)
from playbook_runs import operator  # noqa: F401  (a fixture, found by name)  # pylint: disable=unused-import

WWW_BETA = ["www-beta.*"]
COLLEAGUE_TYPO = "ServerTokns OS"
FINDINGS: list[tuple[str, str, str, str]] = []


# ---------------------------------------------------------------- the faults


def mount(*arguments: str) -> None:
    completed = subprocess.run(["mount", *arguments], capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        pytest.skip(f"this machine lets the tests make no mounts (mount {' '.join(arguments)}: "
                    f"{completed.stderr.strip()}); the read-only and full-disk faults need them")


def unmount(path: Path) -> None:
    subprocess.run(["umount", str(path)], capture_output=True, check=True)


@contextmanager
def read_only(directory: Path):
    """``directory`` on a read-only bind mount of itself: what a read-only /etc does to a writer."""
    mount("--bind", str(directory), str(directory))
    try:
        mount("-o", "remount,ro,bind", str(directory))
        yield
    finally:
        unmount(directory)


@contextmanager
def full_disk(directory: Path):
    """``directory`` on a small tmpfs holding a copy of its files and filled to the last byte."""
    saved = directory.with_name(directory.name + ".before-tmpfs")
    shutil.copytree(directory, saved, symlinks=True)
    mount("-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs", str(directory))
    try:
        shutil.copytree(saved, directory, symlinks=True, dirs_exist_ok=True)
        with open(directory / ".filler", "wb", buffering=0) as filler:
            try:
                while True:
                    filler.write(b"\0" * 4096)
            except OSError:
                pass  # ENOSPC: the disk is full, as wanted
        yield
    finally:
        unmount(directory)
        shutil.rmtree(saved)


def certificate_of(config: Path) -> Path:
    return Path(re.search(r'SSLCertificateFile "([^"]+)"', config.read_text()).group(1))


@contextmanager
def moved_away(path: Path):
    """A file that is gone while the block runs (a certificate deleted by hand, a half-finished renewal)."""
    aside = path.with_name(path.name + ".moved-by-test")
    os.rename(path, aside)
    try:
        yield
    finally:
        os.rename(aside, path)


# ---------------------------------------------------------------- what every faulty host must show


def assert_faulty_host_kept(fleet, name: str, rows: dict, before, said: str) -> None:
    row = rows[name]
    assert row["status"] == "failed", row
    assert said in row["message"], f"{name}: {said!r} not in the message: {row['message']}"
    assert "Traceback" not in row["message"], row["message"]
    assert_untouched(fleet, name, before[name])


def record(fleet, fault: str, host: str, playbook: str, message: str) -> None:
    FINDINGS.append((fault, f"{host} ({playbook})", message.replace(str(fleet.lab.dir), "<lab>")))


# ---------------------------------------------------------------- the runs


def apache_faults(fleet, stack: ExitStack) -> dict[str, str]:
    """web1: a colleague's typo in an unrelated included file; web2: another vhost's certificate deleted."""
    security = Path(fleet.host("web1")["server_root"]) / "conf-available" / "security.conf"
    original = security.read_bytes()
    security.write_bytes(original + f"{COLLEAGUE_TYPO}\n".encode())
    stack.callback(security.write_bytes, original)
    alpha_site = Path(fleet.host("web2")["server_root"]) / "conf.d" / "www-alpha.web2.lab.test.conf"
    certificate = certificate_of(alpha_site)
    stack.enter_context(moved_away(certificate))
    return {"web1": "Invalid command 'ServerTokns'", "web2": str(certificate)}


def system_faults(fleet, stack: ExitStack) -> dict[str, str]:
    """web1: the directory of the files to change is read-only; web2: the disk under them is full."""
    stack.enter_context(read_only(Path(fleet.host("web1")["server_root"]) / "sites-available"))
    stack.enter_context(full_disk(Path(fleet.host("web2")["server_root"]) / "conf.d"))
    return {"web1": "Read-only file system", "web2": "No space left on device"}


FAULTS = {
    "apache": (apache_faults, {"web1": "syntax error in an unrelated included file",
                               "web2": "missing certificate file of another vhost"}),
    "system": (system_faults, {"web1": "read-only config directory (ro bind mount)",
                               "web2": "full disk under the config files (tmpfs)"}),
}


def run_with_faults(fleet, operator, faults: str, playbook: str, switched_off: set[str]) -> dict[str, dict]:
    """``playbook`` scoped to www-beta with web1 and web2 faulty: each must fail with the fault's message and keep
    everything as it was, clients seeing the sites ``switched_off`` before the run. Returns the report's rows."""
    make_faults, described = FAULTS[faults]
    with ExitStack() as stack:
        said = make_faults(fleet, stack)
        before = fleet_state(fleet)

        run = operator.run(playbook, stapling_vhosts=WWW_BETA)

        assert run.returncode != 0, run.output
        assert "Traceback" not in run.output, run.output
        rows = assert_report_consistent(run, playbook)
        for name in ("web1", "web2"):
            assert_faulty_host_kept(fleet, name, rows, before, said[name])
            off = {site for site in switched_off if site.endswith(f".{name}.lab.test")}
            assert_clients_see(fleet, name, expected_staples(fleet.host(name), switched_off=off))
            record(fleet, described[name], name, playbook.split("_")[0], rows[name]["message"])
    assert rows["web3"]["status"] == "changed", rows["web3"]
    assert names_of(rows["web3"]["vhosts_changed"]) == {"www-beta.web3.lab.test"}
    assert_reloaded(fleet, "web3", before["web3"])
    return rows


@pytest.mark.parametrize("faults", FAULTS)
def test_disable_fails_cleanly_on_each_faulty_host_and_goes_on_with_the_others(fleet, operator, faults):
    run_with_faults(fleet, operator, faults, "disable_stapling", switched_off=set())
    assert_clients_see(fleet, "web3", expected_staples(fleet.host("web3"), switched_off={"www-beta.web3.lab.test"}))


@pytest.mark.parametrize("faults", FAULTS)
def test_enable_fails_cleanly_on_each_faulty_host_and_goes_on_with_the_others(fleet, operator, faults):
    hosts = ("web1", "web2", "web3")
    switched_off = fleet.run_playbook("apache_stapling.yml", list(hosts), {
        "stapling_state": "disabled", "stapling_vhosts": WWW_BETA})
    for name in hosts:
        assert switched_off[name]["changed"] and not switched_off[name].get("failed"), switched_off[name]
        fleet.reload(name)

    run_with_faults(fleet, operator, faults, "enable_stapling", switched_off={f"www-beta.{name}.lab.test" for name in hosts})
    assert_clients_see(fleet, "web3", expected_staples(fleet.host("web3")))


def teardown_module() -> None:
    if not FINDINGS:
        return
    lines = ["## Validate-then-reload under faults", "",
             "`tests/integration/pytest/test_faults.py`: `disable_stapling.yml` and `enable_stapling.yml` scoped to",
             "`www-beta.*` on three lab hosts, two of them faulty, one healthy. For every faulty host: status",
             "`failed` with the message below, no byte changed under its ServerRoot, the same master pid, no reload,",
             "clients see the old config; the healthy host was switched, reloaded and checked in the same run.", "",
             "| fault | host (playbook) | the host's message |", "|---|---|---|"]
    for fault, where, message in FINDINGS:
        words = " ".join(line.strip() for line in message.splitlines() if line.strip())
        lines.append(f"| {fault} | {where} | {words[:240].replace('|', '/')} |")
    record_reliability(lines[0], "\n".join(lines) + "\n")
