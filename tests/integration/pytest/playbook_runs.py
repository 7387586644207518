"""Running the collection's playbooks on the lab the way an operator does, and what an operator checks after.

``Operator.run`` runs one of playbooks/ with the lab inventory (plus any extra inventories) and reads the fleet
report it writes; the ``assert_*`` helpers check the report, the bytes under each ServerRoot, the master process
and its reloads, and what ``openssl s_client -status`` gets from each vhost.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import HOST_NAMES, REPO_ROOT, error_log_reloads, master_alive, staple_status
from server_root import snapshot

PLAYBOOKS = REPO_ROOT / "playbooks"
# A test-only callback that writes every task's diff to a file, to hold check mode to its word.
DIFF_RECORDER = Path(__file__).resolve().parent / "callback_plugins"
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
PLAYBOOK_TIMEOUT = 300
ALPHA_OCSP_HOST = "127.0.0.1"  # selects the sites of CA alpha, as an operator would during its outage
STATUSES_NEEDING_ATTENTION = ("failed", "drift", "left_off")
GENERATED = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
# The timestamped copy Ansible's backup_local makes: <file>.<pid>.<date>@<time>~
BACKUP_COPY = re.compile(r"\.\d+\.\d{4}-\d\d-\d\d@\d\d:\d\d:\d\d~$")


def run_playbook(fleet, playbook: str, hosts: list[str], extra_vars: dict, timeout: int = 600):
    """``ansible-playbook`` on the lab inventory, limited to ``hosts``; ``playbook`` is a path, or the name of
    one of the collection's playbooks/. Returns the CompletedProcess with stdout and stderr."""
    path = Path(playbook) if "/" in playbook else PLAYBOOKS / f"{playbook}.yml"
    return subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(fleet.lab.inventory),
         "--limit", ",".join(hosts), str(path), "-e", json.dumps(extra_vars)],
        env=fleet.env, capture_output=True, text=True, timeout=timeout, check=False)


# ---------------------------------------------------------------- running a playbook


@dataclass
class PlaybookRun:
    """One ansible-playbook run: its exit code and output, and the fleet report it wrote (None: none written)."""

    returncode: int
    output: str
    report: dict | None
    markdown: str | None
    diffs: list[dict]

    def rows(self) -> dict[str, dict]:
        assert self.report is not None, f"the playbook wrote no JSON report:\n{self.output}"
        return {row["host"]: row for row in self.report["hosts"]}


class Operator:
    """Runs the collection's playbooks on the lab fleet and switches the lab's responders."""

    def __init__(self, fleet, scratch: Path):
        self.fleet = fleet
        self.scratch = scratch
        self.runs = 0
        # The lab is on loopback: a proxy of the machine running the tests must not come between.
        self.env = {key: value for key, value in fleet.env.items() if key.lower() != "http_proxy"}

    def run(self, playbook: str, inventories: tuple[Path, ...] = (), check: bool = False, **extra_vars) -> PlaybookRun:
        self.runs += 1
        run_dir = self.scratch / f"{self.runs:02d}-{playbook}"
        report_dir = run_dir / "reports"
        run_dir.mkdir(parents=True)
        vars_file = run_dir / "vars.json"
        vars_file.write_text(json.dumps(dict(extra_vars, stapling_report_dir=str(report_dir))))
        command = [str(ANSIBLE_PLAYBOOK), "-i", str(self.fleet.lab.inventory)]
        for inventory in inventories:
            command += ["-i", str(inventory)]
        command += [str(PLAYBOOKS / f"{playbook}.yml"), "-e", f"@{vars_file}"] + ["--check", "--diff"] * check
        diffs_file = run_dir / "diffs.jsonl"
        env = dict(self.env, ANSIBLE_CALLBACK_PLUGINS=str(DIFF_RECORDER), ANSIBLE_CALLBACKS_ENABLED="record_diffs",
                   FLEET_STAPLING_DIFFS=str(diffs_file))
        completed = subprocess.run(command, cwd=run_dir, env=env, capture_output=True, text=True,
                                   timeout=PLAYBOOK_TIMEOUT, check=False)
        json_report = report_dir / f"{playbook}.json"
        markdown_report = report_dir / f"{playbook}.md"
        return PlaybookRun(
            returncode=completed.returncode,
            output=f"$ {' '.join(command)}\n{completed.stdout}{completed.stderr}",
            report=json.loads(json_report.read_text()) if json_report.exists() else None,
            markdown=markdown_report.read_text() if markdown_report.exists() else None,
            diffs=[json.loads(line) for line in diffs_file.read_text().splitlines()] if diffs_file.exists() else [],
        )

    def fault(self, ca: str, mode: str) -> None:
        self.fleet.lab.cli("fault", ca, mode)

    def responder_url(self, ca: str) -> str:
        return self.fleet.lab.state["responders"][ca]["url"]

    def responder_netloc(self, ca: str) -> str:
        return self.responder_url(ca).split("/")[2]


@pytest.fixture
def operator(fleet, tmp_path):
    """The operator of the module's lab; afterwards every responder answers ``ok`` and every host is pristine.

    Test modules import it with the names they use (pytest finds a fixture by its name in the module)."""
    try:
        yield Operator(fleet, tmp_path)
    finally:
        fleet.lab.cli("fault", "all", "ok")
        for name in HOST_NAMES:
            fleet.reset(name)


# ---------------------------------------------------------------- the report


def assert_report_consistent(run: PlaybookRun, name: str, hosts: tuple[str, ...] = HOST_NAMES) -> dict[str, dict]:
    """The JSON report names the run, has one row per host, and its totals agree with the rows; returns the rows."""
    report = run.report
    assert report is not None, f"the playbook wrote no JSON report:\n{run.output}"
    assert report["name"] == name
    assert GENERATED.fullmatch(report["generated"]), report["generated"]
    assert [row["host"] for row in report["hosts"]] == sorted(hosts), report
    assert report["hosts_failed_before_reporting"] == [], report
    assert report["counts"] == dict(Counter(row["status"] for row in report["hosts"])), report
    assert report["hosts_needing_attention"] == [
        row["host"] for row in report["hosts"] if row["status"] in STATUSES_NEEDING_ATTENTION
    ], report
    assert report["vhosts_changed"] == [vhost for row in report["hosts"] for vhost in row.get("vhosts_changed", [])]
    assert run.markdown is not None and f"# {name}\n" in run.markdown
    for row in report["hosts"]:
        assert f"| {row['host']} | {row['status']} |" in run.markdown, run.markdown
    return run.rows()


def names_of(vhost_ids: list[str]) -> set[str]:
    """'www-alpha.web1.lab.test (/path:2)' -> 'www-alpha.web1.lab.test'."""
    return {vhost_id.split(" ", 1)[0] for vhost_id in vhost_ids}


# ---------------------------------------------------------------- the hosts


@dataclass(frozen=True)
class HostState:
    """What a run must leave alone on a host it does not change: the files, the master process, the reloads."""

    files: dict
    pid: int | None
    reloads: int


def master_pid(host: dict) -> int | None:
    try:
        return int(Path(host["pid_file"]).read_text().strip())
    except (OSError, ValueError):
        return None


def host_state(fleet, name: str) -> HostState:
    host = fleet.host(name)
    return HostState(snapshot(Path(host["server_root"])), master_pid(host), error_log_reloads(host))


def fleet_state(fleet) -> dict[str, HostState]:
    return {name: host_state(fleet, name) for name in HOST_NAMES}


def assert_untouched(fleet, name: str, before: HostState, except_backup_copies: bool = False) -> None:
    """No byte changed under the ServerRoot, the same master runs, and it was not reloaded."""
    after = host_state(fleet, name)
    changed = sorted(path for path in set(before.files) | set(after.files)
                     if before.files.get(path) != after.files.get(path))
    if except_backup_copies:
        changed = [path for path in changed if not (BACKUP_COPY.search(path) and path not in before.files)]
    assert changed == [], f"{name}: changed under the ServerRoot: {changed}"
    assert after.pid == before.pid, f"{name}: the master pid changed from {before.pid} to {after.pid}"
    assert master_alive(fleet.host(name)), f"{name}: the Apache master is gone"
    assert after.reloads == before.reloads, f"{name}: reloaded {after.reloads - before.reloads} time(s)"


def assert_reloaded(fleet, name: str, before: HostState) -> None:
    after = host_state(fleet, name)
    assert after.reloads > before.reloads, f"{name}: not reloaded"
    assert after.pid == before.pid, f"{name}: the master was restarted instead of reloaded"


def server_names(host: dict, **conditions) -> set[str]:
    return {v["server_name"] for v in host["vhosts"] if all(v[key] == value for key, value in conditions.items())}


def stapling_names(host: dict, **conditions) -> set[str]:
    """The vhosts that can staple at all: those whose certificate names an OCSP responder."""
    return {name for name in server_names(host, **conditions) if name not in server_names(host, kind="no-ocsp-url")}


# ---------------------------------------------------------------- what clients see


def assert_clients_see(fleet, name: str, expected: dict[str, str | None]) -> None:
    seen = fleet.staples_until(name, expected)
    for server_name, wanted in expected.items():
        status = staple_status(seen[server_name])
        assert status == wanted, f"{server_name}: expected staple {wanted}, got {status}:\n{seen[server_name].output}"


def switch_off_alpha_sites_with_the_module(fleet, names: list[str]) -> None:
    """The state after an alpha outage: its sites (Must-Staple ones too) not stapling, on the running servers."""
    results = fleet.run_playbook("apache_stapling.yml", names, {
        "stapling_state": "disabled", "stapling_ocsp_hosts": [ALPHA_OCSP_HOST], "stapling_force": True})
    for name in names:
        assert not results[name].get("failed"), results[name]
        fleet.reload(name)


# ---------------------------------------------------------------- check mode held to its word


def _entry(entry: tuple) -> tuple:
    """A snapshot entry without the file mode: what a diff can promise."""
    return entry[:2]


def promised_by_check_mode(fleet, run: PlaybookRun) -> dict[str, dict[str, tuple]]:
    """Per host, what the diffs of a ``--check --diff`` run said would be written: ServerRoot-relative path ->
    ("file", bytes) or ("link", target). Call it after the real run, so that edits made through a symlink
    (Debian's sites-enabled) are found at the file the link points at, where the snapshot sees them."""
    promised: dict[str, dict[str, tuple]] = {name: {} for name in HOST_NAMES}
    for event in run.diffs:
        diff, after = event["diff"], event["diff"].get("after")
        # a file that is new has no before_header (the copy module then names it in after_header)
        header = diff.get("before_header") or diff.get("after_header") or ""
        if event["host"] not in promised or not event["changed"] or not isinstance(after, str) \
                or not header.startswith("/"):
            continue  # the controller's report, a directory's state, or a diff of a task that changed nothing
        root = Path(fleet.host(event["host"])["server_root"])
        if after.startswith("symlink to "):
            path, entry = Path(header), ("link", after[len("symlink to "):].rstrip("\n"))
        elif after.startswith("directory, mode "):
            path, entry = Path(header), ("dir",)
        else:
            path, entry = Path(os.path.realpath(header)), ("file", after.encode())
        key = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
        promised[event["host"]][key] = entry
    return promised


def written_since(fleet, before: dict[str, HostState]) -> dict[str, dict[str, tuple]]:
    """Per host, the files and links under the ServerRoot that are new or different since ``before``, leaving out
    the timestamped backup copies a run keeps."""
    written = {}
    for name in HOST_NAMES:
        now = host_state(fleet, name).files
        written[name] = {path: _entry(entry) for path, entry in now.items()
                         if entry[0] in ("file", "link") and not BACKUP_COPY.search(path)
                         and _entry(entry) != _entry(before[name].files.get(path, ("absent",)))}
    return written
