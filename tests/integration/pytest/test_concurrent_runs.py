"""Concurrent runs, interrupted runs and a config changed behind the module's back, on the lab over SSH.

apache_stapling holds a lock per Apache instance from its read through write, ``ctl -t`` and rollback, and
journals each pass before it replaces a file. To stop a run at a known point without hooks in the module, the
tests give it a ``ctl`` that is a wrapper around the lab's own: on ``-t`` (the validation right after the
write) it notes the module's pid (its parent) and waits. A certificate file that is a named pipe holds a run
between its read of the config and its write: the module reads certificates while planning.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import threading
import time
from pathlib import Path

import pytest

from conftest import expected_staples, lab_fleet, record_reliability, run_adhoc
from playbook_runs import Operator
from server_root import snapshot

MODULE = "fleet.stapling.apache_stapling"
HOST = "web2"  # the RHEL layout: stapling and its settings live in conf.d/ssl.conf, which both runs below change
PAUSE_SECONDS = 2
FIGURES: dict[str, str] = {}


@pytest.fixture(scope="module")
def fleet():
    with lab_fleet("locks-") as running:
        yield running


@pytest.fixture
def host(fleet):
    yield fleet.host(HOST)
    fleet.reset(HOST)


# ---------------------------------------------------------------- driving the module


class PausingCtl:
    """The lab's ctl behind a script that, on ``-t``, logs who asked, then waits: a fixed time, or until released."""

    def __init__(self, directory: Path, real_ctl: str, seconds: float | None = None):
        self.log = directory / "ctl-t.log"
        self.marker = directory / "ctl-t.waiting"
        self.release_file = directory / "ctl-t.release"
        self.path = directory / "pausing-ctl"
        wait = (f"sleep {seconds}" if seconds is not None else
                f"while [ ! -e {shlex.quote(str(self.release_file))} ]; do sleep 0.05; done")
        self.path.write_text(f"""#!/bin/sh
for argument in "$@"; do
  if [ "$argument" = "-t" ]; then
    echo "$PPID start $(date +%s.%N)" >> {shlex.quote(str(self.log))}
    echo "$PPID $$" > {shlex.quote(str(self.marker))}
    {wait}
    echo "$PPID end $(date +%s.%N)" >> {shlex.quote(str(self.log))}
  fi
done
exec {real_ctl} "$@"
""")
        self.path.chmod(0o755)

    def wait_until_paused(self, timeout: float = 60.0) -> tuple[int, int]:
        """(the module's pid, the wrapper's pid) once a run waits in ``ctl -t``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.marker.exists() and self.marker.read_text().strip():
                module_pid, wrapper_pid = self.marker.read_text().split()
                return int(module_pid), int(wrapper_pid)
            time.sleep(0.05)
        raise AssertionError("no run reached ctl -t")

    def release(self) -> None:
        self.release_file.write_text("")

    def windows(self) -> dict[int, tuple[float, float]]:
        """When each module (by pid) was in ``ctl -t``: (start, end)."""
        seen: dict[int, list[float]] = {}
        for line in self.log.read_text().splitlines():
            pid, _event, moment = line.split()
            seen.setdefault(int(pid), []).append(float(moment))
        return {pid: (moments[0], moments[-1]) for pid, moments in seen.items()}


def stapling(fleet, host: dict, state_dir: Path, ctl: str | None = None, **options) -> tuple[bool, dict]:
    """apache_stapling on the lab host over SSH, with the lab's instance options and this test's state dir."""
    args = dict(ctl=ctl or host["ctl"], config_file=host["config_file"], server_root=host["server_root"],
                state_dir=str(state_dir), **options)
    return run_adhoc(fleet.env, [fleet.lab.inventory], host["name"], MODULE, args)


def in_background(call, *args, **kwargs) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def target():
        outcome["result"] = call(*args, **kwargs)

    thread = threading.Thread(target=target)
    thread.start()
    return thread, outcome


def assert_configtest_passes(fleet, host: dict) -> None:
    completed = fleet.configtest(host["name"])
    assert completed.returncode == 0, completed.stdout + completed.stderr


# ---------------------------------------------------------------- (a) two runs at once


DISABLE = {"state": "disabled"}
TIMEOUT = {"responder_timeout": 4}


def test_two_runs_at_once_take_turns_and_leave_what_one_order_leaves(fleet, host, tmp_path):
    server_root = Path(host["server_root"])
    state_dir = tmp_path / "state"
    ctl = PausingCtl(tmp_path, host["ctl"], seconds=PAUSE_SECONDS)
    runs = {"disable": DISABLE, "timeout": TIMEOUT}

    threads = {name: in_background(stapling, fleet, host, state_dir, ctl=str(ctl.path), **options)
               for name, options in runs.items()}
    results = {}
    for name, (thread, outcome) in threads.items():
        thread.join(timeout=300)
        ok, results[name] = outcome["result"]
        assert ok and results[name]["changed"], f"{name}: {results[name]}"
    concurrent = snapshot(server_root)

    # the writes did not overlap: each module was in ctl -t (right after its write) while the other waited
    windows = sorted(ctl.windows().items(), key=lambda item: item[1])
    assert len(windows) == 2, windows
    (first_pid, (_start, first_end)), (_second_pid, (second_start, _end)) = windows
    assert first_end <= second_start, f"the two runs were in ctl -t at the same time: {windows}"
    waiter = next(name for name, result in results.items() if result["lock"]["waited_for"])
    holder = next(name for name in runs if name != waiter)
    assert results[holder]["lock"]["waited_for"] is None, results[holder]["lock"]
    assert results[waiter]["lock"]["waited_for"].startswith(f"pid {first_pid} (apache_stapling ")
    assert results[waiter]["lock"]["waited"] > 0.5, results[waiter]["lock"]
    assert_configtest_passes(fleet, host)

    # the same two changes one after the other, in the order the lock gave them: the same bytes (no update lost)
    fleet.reset(HOST)
    for name in (holder, waiter):
        ok, result = stapling(fleet, host, state_dir, **runs[name])
        assert ok and result["changed"], f"{name}: {result}"
    assert snapshot(server_root) == concurrent
    FIGURES["two runs at once"] = (f"`{holder}` took the lock first; `{waiter}` waited "
                                   f"{results[waiter]['lock']['waited']:.2f} s (the holder's `ctl -t` was held "
                                   f"{PAUSE_SECONDS} s); files equal to `{holder}` then `{waiter}` run in turn")


def test_two_disable_playbooks_at_once_on_one_host_both_land_one_after_the_other(fleet, host, tmp_path):
    # Two operators, one host, two CAs in trouble: each runs disable_stapling.yml for its own CA's sites at the
    # same moment. Their module runs take turns on the lock; both changes land and the config stays valid.
    ctl = PausingCtl(tmp_path, host["ctl"], seconds=PAUSE_SECONDS)
    sites = {"alpha": "www-alpha.*", "beta": "www-beta.*"}
    operators = {ca: Operator(fleet, tmp_path / ca) for ca in sites}
    runs = {ca: in_background(operators[ca].run, "disable_stapling", stapling_target_hosts=HOST,
                              stapling_vhosts=[pattern], stapling_apache_ctl=str(ctl.path),
                              stapling_state_dir=str(tmp_path / "state"))
            for ca, pattern in sites.items()}
    for ca, (thread, outcome) in runs.items():
        thread.join(timeout=600)
        run = outcome["result"]
        assert run.returncode == 0, run.output
        row = run.rows()[HOST]
        assert row["status"] == "changed" and row["vhosts_changed"], row

    windows = sorted(ctl.windows().values())
    assert len(windows) >= 2, windows
    for (_start, end), (start, _end) in zip(windows, windows[1:]):
        assert end <= start, f"two module runs were in ctl -t at the same time: {windows}"
    assert_configtest_passes(fleet, host)
    switched_off = {f"www-alpha.{HOST}.lab.test", f"www-beta.{HOST}.lab.test"}
    expected = {name: status for name, status in expected_staples(host, switched_off=switched_off).items()
                if name in switched_off}
    assert all(status is None for status in expected.values())
    seen = fleet.staples_until(HOST, expected)
    assert all(not check.stapled for check in seen.values()), {name: c.output[-200:] for name, c in seen.items()}
    FIGURES["two playbooks at once"] = (
        f"`disable_stapling.yml` for `www-alpha.*` and for `www-beta.*` started together on {HOST}: "
        f"{len(windows)} module runs in `ctl -t`, none overlapping; both runs `changed`, both sites unstapled, "
        "`ctl -t` passes")


def test_a_run_that_may_not_wait_long_gives_up_naming_the_holder_and_changes_nothing(fleet, host, tmp_path):
    server_root = Path(host["server_root"])
    state_dir = tmp_path / "state"
    ctl = PausingCtl(tmp_path, host["ctl"])
    thread, holder = in_background(stapling, fleet, host, state_dir, ctl=str(ctl.path), **DISABLE)
    try:
        holder_pid, _wrapper = ctl.wait_until_paused()
        during = snapshot(server_root)
        started = time.monotonic()
        ok, result = stapling(fleet, host, state_dir, lock_timeout=1, **TIMEOUT)
        gave_up_after = time.monotonic() - started
    finally:
        ctl.release()
        thread.join(timeout=300)

    assert not ok, result
    message = result["msg"]
    assert "another run holds the lock of the Apache instance" in message, message
    assert f"pid {holder_pid} (apache_stapling state=disabled, since " in message, message
    assert "Gave up after 1." in message and "lock_timeout=1" in message and "Traceback" not in message, message
    assert snapshot(server_root) == during  # it read nothing and wrote nothing while it waited
    assert gave_up_after < 60, gave_up_after  # the bound was honoured (the holder never let go meanwhile)
    holder_ok, holder_result = holder["result"]
    assert holder_ok and holder_result["changed"], holder_result
    assert_configtest_passes(fleet, host)
    module_wait = re.search(r"Gave up after ([0-9.]+) s", message).group(1)
    FIGURES["lock_timeout"] = (f"with `lock_timeout=1` the second run gave up after {module_wait} s in the module "
                               f"({gave_up_after:.1f} s for the whole ad-hoc command): "
                               f"`{in_lab_terms(fleet, message.split('. Gave up')[0])}`")


# ---------------------------------------------------------------- (b) a run killed between write and validation


def files_named(records: list[dict]) -> list[str]:
    return [copy for record in records for copy in (record.get("backups") or {}).values()]


@pytest.mark.parametrize("backup", [False, True], ids=["without-backup", "with-backup"])
def test_a_run_killed_between_write_and_validation_is_repaired_byte_for_byte_by_the_next(
        fleet, host, tmp_path, backup):
    server_root = Path(host["server_root"])
    state_dir = tmp_path / "state"
    before = snapshot(server_root)
    ctl = PausingCtl(tmp_path, host["ctl"])
    thread, killed = in_background(stapling, fleet, host, state_dir, ctl=str(ctl.path), backup=backup, **DISABLE)
    try:
        module_pid, wrapper_pid = ctl.wait_until_paused()
        os.kill(module_pid, signal.SIGKILL)
    finally:
        ctl.release()
        thread.join(timeout=300)
    if Path(f"/proc/{wrapper_pid}").exists():
        os.kill(wrapper_pid, signal.SIGKILL)  # released, it would go on to run the real ctl -t: no need
    killed_ok, killed_result = killed["result"]
    assert not killed_ok, killed_result

    half_done = snapshot(server_root)
    assert half_done != before, "the killed run should have written before ctl -t"
    journals = list(state_dir.glob("*.journal"))
    assert len(journals) == 1, list(state_dir.iterdir())
    journal = json.loads(journals[0].read_text())
    assert journal["stage"] == "written" and journal["pid"] == module_pid, journal
    copies = files_named(journal["records"])
    assert copies and all(Path(copy).exists() for copy in copies), copies  # the backups it needs are there
    assert oct(state_dir.stat().st_mode & 0o777) == oct(0o700)

    # the next run, with the real ctl and nothing of its own to change: only the repair
    ok, result = stapling(fleet, host, state_dir)

    assert ok, result
    repaired = result["repaired"]
    assert repaired and repaired["stage"] == "written", result
    assert repaired["left_by"] == journal_left_by(journal), repaired
    assert repaired["restored_files"], repaired
    assert result["lock"]["stale"].startswith(f"left by pid {module_pid} ("), result["lock"]
    assert result["lock"]["stale"].endswith("which is gone"), result["lock"]
    assert result["changed"], result
    assert "killed between writing and validating" in " ".join(result.get("warnings", [])) + result["stderr"], result
    assert snapshot(server_root) == before, "the repaired host differs from before the killed run"
    # the killed run's lock file, journal and copies are all gone; what the certificates say is kept for the next
    assert [p.name for p in state_dir.iterdir()] == ["certificate-facts.json"]
    assert_configtest_passes(fleet, host)

    ok, result = stapling(fleet, host, state_dir, **DISABLE)  # and the host takes a normal change again
    assert ok and result["changed"] and result["repaired"] is None, result
    assert_configtest_passes(fleet, host)
    FIGURES[f"killed run ({'backup=true' if backup else 'backup=false'})"] = (
        f"SIGKILL in `ctl -t` left changed: {', '.join(map(masked, changed(before, half_done)))}; the journal named "
        f"{len(copies)} backup copy ({'beside the file' if backup else 'private, in the state directory'}); "
        f"the next run restored {len(repaired['restored_files'])} file and removed {len(repaired['removed_files'])}: "
        f"the ServerRoot equal byte for byte to before, `ctl -t` passes")


def masked(path: str) -> str:
    """A backup copy's name without its pid and time, so that the report does not change every run."""
    return re.sub(r"\.\d+\.\d{4}-\d\d-\d\d@\d\d:\d\d:\d\d~$", ".<pid>.<time>~", path)


def journal_left_by(journal: dict) -> str:
    return f"pid {journal['pid']} ({journal['doing']}, since {journal['started']}), which is gone"


def changed(before: dict, after: dict) -> list[str]:
    return sorted(path for path in set(before) | set(after) if before.get(path) != after.get(path))


# ---------------------------------------------------------------- (c) a file changed between plan and write


class CertificateThroughPipe:
    """A vhost's certificate file replaced by a named pipe: the module blocks reading it, after its read of the
    config (it reads certificates while planning), until the test feeds the certificate's bytes."""

    def __init__(self, path: Path):
        self.path = path
        self.data = path.read_bytes()
        self.aside = path.with_name(path.name + ".real")
        os.rename(path, self.aside)
        os.mkfifo(path, 0o644)
        self.reader_arrived = threading.Event()
        self.feed = threading.Event()
        self.stopping = False
        self.thread = threading.Thread(target=self._serve)
        self.thread.start()

    def _serve(self):
        while not self.stopping:
            try:
                with open(self.path, "wb", buffering=0) as pipe:  # returns once a reader opened the pipe
                    if self.stopping:
                        return
                    self.reader_arrived.set()
                    self.feed.wait()
                    pipe.write(self.data)
            except BrokenPipeError:
                return  # close() opened the pipe only to let this thread go

    def close(self):
        self.stopping = True
        self.feed.set()
        descriptor = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)  # lets a writer waiting for a reader go
        os.close(descriptor)
        self.thread.join(timeout=10)
        os.unlink(self.path)
        os.rename(self.aside, self.path)


def test_a_file_changed_between_plan_and_write_stops_the_run_with_nothing_written(fleet, host, tmp_path):
    server_root = Path(host["server_root"])
    state_dir = tmp_path / "state"
    www_alpha = next(v for v in host["vhosts"] if v["server_name"].startswith("www-alpha."))
    ssl_conf = server_root / "conf.d" / "ssl.conf"  # where the plan turns SSLUseStapling off
    pipe = CertificateThroughPipe(Path(www_alpha["cert_file"]))
    try:
        thread, run = in_background(stapling, fleet, host, state_dir, **DISABLE)
        assert pipe.reader_arrived.wait(timeout=60), "the module never read the certificate"
        # the module has read the config and is planning: an operator's editor saves ssl.conf now
        ssl_conf.write_bytes(ssl_conf.read_bytes() + b"# raised by hand during the incident\n")
        edited = snapshot(server_root)
        pipe.feed.set()
        thread.join(timeout=300)
    finally:
        pipe.close()

    ok, result = run["result"]
    assert not ok, result
    message = result["msg"]
    assert f"{ssl_conf} changed on disk after this run read it" in message, message
    assert "Nothing was written" in message and "Traceback" not in message, message
    assert snapshot(server_root) == edited, "a byte changed after the operator's edit"
    assert not list(state_dir.glob("*.journal")) and not list(state_dir.glob("*.copies"))
    assert_configtest_passes(fleet, host)
    FIGURES["changed between plan and write"] = f"`{in_lab_terms(fleet, message)}`"


def in_lab_terms(fleet, message: str) -> str:
    """A message with the lab's temporary directory shortened, so that the report does not change every run."""
    return message.replace(str(fleet.lab.dir), "<lab>")


def teardown_module() -> None:
    if not FIGURES:
        return
    lines = ["## Concurrent and interrupted runs", "",
             "`tests/integration/pytest/test_concurrent_runs.py`: `apache_stapling` ad hoc over SSH on the RHEL-layout",
             "lab host, with a `ctl` wrapper that holds a run in `ctl -t` (right after its write) to order the",
             "runs, and a certificate read through a named pipe to hold one between its plan and its write.", "",
             "| case | what happened |", "|---|---|"]
    for case, text in FIGURES.items():
        lines.append(f"| {case} | {text.replace('|', '/')} |")
    record_reliability(lines[0], "\n".join(lines) + "\n")
