"""The lab fleet for the collection's integration tests, and a driver that runs the modules on it.

The modules run the way operators run them: ``ansible-playbook`` with the lab's inventory and the playbooks in
``playbooks/``, which pass the ``stapling_apache_*`` host variables on and save each host's registered result
as JSON. What clients see is read with ``openssl s_client -status`` after the host's own reload command.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
LAB_DIR = REPO_ROOT / "tests" / "lab"
if str(LAB_DIR) not in sys.path:
    sys.path.insert(0, str(LAB_DIR))


ANSIBLE = Path(sys.executable).with_name("ansible")
_ADHOC_RESULT = re.compile(r"^\S+ \| (SUCCESS|CHANGED|FAILED!) => ", re.MULTILINE)


def run_adhoc(env: dict, inventories: list[Path], host: str, module: str, args: dict | str, check: bool = False,
              cwd: Path | None = None) -> tuple[bool, dict]:
    """``ansible HOST -m MODULE -a ARGS`` through the given inventories, as an operator's ad-hoc command reaches a
    host (over the lab's SSH): (succeeded, the module's result, with ansible's stderr under "stderr")."""
    command = [str(ANSIBLE), host, "-m", module, "-a", args if isinstance(args, str) else json.dumps(args)]
    for inventory in inventories:
        command += ["-i", str(inventory)]
    command += ["--check"] * check
    completed = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    match = _ADHOC_RESULT.search(completed.stdout)
    assert match, f"no result in the output of {' '.join(command)}:\n{completed.stdout}{completed.stderr}"
    result = json.loads(completed.stdout[match.end():])
    result["stderr"] = completed.stderr
    return match.group(1) != "FAILED!", result


def _collections_root() -> str:
    """The entry of make integration's ANSIBLE_COLLECTIONS_PATH that holds this tree as fleet.stapling, else a
    temporary root made here (a run of pytest alone)."""
    for entry in filter(None, os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep)):
        if (Path(entry) / "ansible_collections" / "fleet" / "stapling").exists():
            return entry
    root = Path(tempfile.mkdtemp(prefix="fleet-stapling-collections-"))
    (root / "ansible_collections" / "fleet").mkdir(parents=True)
    (root / "ansible_collections" / "fleet" / "stapling").symlink_to(REPO_ROOT)
    return str(root)


# Test modules import the collection's module_utils from here, and every ansible run gets it as its path.
COLLECTIONS_ROOT = _collections_root()
if COLLECTIONS_ROOT not in sys.path:
    sys.path.insert(0, COLLECTIONS_ROOT)

from fleetlab.processes import command_line  # noqa: E402  (needs the lab path above)
from fleetlab.staple_check import StapleCheck, check_staple  # noqa: E402
from fleetlab.report_sections import write_section  # noqa: E402
from fleetlab.testing import RunningLab  # noqa: E402

# The error_class ocsp_probe must give a good certificate whose responder is in each of the lab's classic fault
# modes (test_ocsp_probe, and test_responder_faults with the modes that test the client's bounds).
FAULT_CLASSES = {
    "ok": None,
    "down": "connect_refused",
    "hang": "timeout",
    "html": "not_ocsp",
    "http500": "http_error",
    "garbage": "malformed",
    "trylater": "try_later",
    "unauthorized": "unauthorized",
    "wrong-signer": "bad_signature",
    "expired": "stale",
    "future": "not_yet_valid",
}


RELIABILITY_MD = REPO_ROOT / "docs" / "reliability.md"
RELIABILITY_TITLE = """# Reliability

Written by the reliability tests of `make test` (tests/integration/pytest), one section per test, each
replaced when its test runs. The figures come from the lab on the machine that ran them."""


def record_reliability(section: str, text: str) -> None:
    """Put a reliability test's figures in docs/reliability.md as the section headed ``section``."""
    write_section(RELIABILITY_MD, section, text, title=RELIABILITY_TITLE)


PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"
HOST_NAMES = ("web1", "web2", "web3")
RELOADED = "resuming normal operations"
WAIT_SECONDS = 10.0

# Module options the playbooks take as extra vars, and the host variables a test may override.
MODULE_OPTION_VARS = {name: f"stapling_{name}" for name in ("state", "vhosts", "ocsp_hosts", "force", "backup",
                                                            "keep_stored_staples")}
MODULE_OPTION_VARS.update(ctl="stapling_apache_ctl", config_file="stapling_apache_config_file")


def error_log_reloads(host: dict) -> int:
    return Path(host["error_log"]).read_text(errors="replace").count(RELOADED)


def master_alive(host: dict) -> bool:
    """The master named by the pid file runs with this host's ServerRoot (a restart may have changed its pid)."""
    try:
        pid = int(Path(host["pid_file"]).read_text().strip())
    except (OSError, ValueError):
        return False
    arguments = command_line(pid)
    return arguments is not None and str(host["server_root"]).encode() in arguments


class LabFleet:
    """Runs the modules on the lab's hosts and looks at the hosts the way an operator would."""

    def __init__(self, lab: RunningLab, scratch: Path):
        self.lab = lab
        self.scratch = scratch
        self.env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_ROOT, ANSIBLE_NOCOLOR="1",
                        ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_LOCAL_TEMP=str(scratch / "ansible-tmp"))
        # The lab's inventory says how each host is reached and which Python runs there; nothing overrides it.
        self.env.pop("ANSIBLE_PYTHON_INTERPRETER", None)
        self.runs = 0

    def host(self, name: str) -> dict:
        return self.lab.host(name)

    def server_root(self, name: str) -> Path:
        return Path(self.host(name)["server_root"])

    # ------------------------------------------------------------ the modules, through ansible-playbook

    def run_playbook(self, playbook: str, hosts: list[str], extra_vars: dict, check: bool = False,
                     diff: bool = False) -> dict[str, dict]:
        """Each host's registered result; the playbooks ignore module failures so that results come back."""
        self.runs += 1
        run_dir = self.scratch / f"run{self.runs}"
        run_dir.mkdir()
        (run_dir / "vars.json").write_text(json.dumps(dict(extra_vars, result_dir=str(run_dir))))
        command = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(self.lab.inventory),
                   "--limit", ",".join(hosts), str(PLAYBOOKS / playbook), "-e", f"@{run_dir / 'vars.json'}"]
        command += ["--check"] * check + ["--diff"] * diff
        completed = subprocess.run(command, cwd=run_dir, env=self.env, capture_output=True, text=True,
                                   timeout=180, check=False)
        output = completed.stdout + completed.stderr
        assert completed.returncode == 0, f"{' '.join(command)} failed ({completed.returncode}):\n{output}"
        results = {}
        for name in hosts:
            saved = run_dir / f"{name}.json"
            assert saved.exists(), f"no result saved for {name}:\n{output}"
            results[name] = json.loads(saved.read_text())
            results[name]["playbook_output"] = output
        return results

    def stapling(self, name: str, check: bool = False, diff: bool = False, **options) -> dict:
        """apache_stapling on one host; ``options`` are module options (ctl and config_file replace the host's)."""
        extra_vars = {MODULE_OPTION_VARS[option]: value for option, value in options.items()}
        return self.run_playbook("apache_stapling.yml", [name], extra_vars, check=check, diff=diff)[name]

    def info(self, names: list[str], **options) -> dict[str, dict]:
        extra_vars = {MODULE_OPTION_VARS[option]: value for option, value in options.items()}
        return self.run_playbook("apache_stapling_info.yml", names, extra_vars)

    # ------------------------------------------------------------ Apache itself

    def configtest(self, name: str) -> subprocess.CompletedProcess:
        return subprocess.run(shlex.split(self.host(name)["ctl"]) + ["-t"], capture_output=True, text=True,
                              timeout=60, check=False)

    def reload(self, name: str) -> None:
        """The host's reload command, then wait until the master has read the new config."""
        host = self.host(name)
        before = error_log_reloads(host)
        completed = subprocess.run(shlex.split(host["reload"]), capture_output=True, text=True, timeout=60,
                                   check=False)
        assert completed.returncode == 0, f"{name}: reload failed:\n{completed.stdout}{completed.stderr}"
        self.wait_for_reloads(name, before + 1)

    def wait_for_reloads(self, name: str, count: int) -> None:
        """Wait until the master has logged ``count`` (re)starts in all, and check it is alive."""
        host = self.host(name)
        deadline = time.monotonic() + WAIT_SECONDS
        while error_log_reloads(host) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        log_tail = "\n".join(Path(host["error_log"]).read_text(errors="replace").splitlines()[-10:])
        assert error_log_reloads(host) >= count, f"{name} did not come back from the reload:\n{log_tail}"
        assert master_alive(host), f"{name}: the Apache master died at the reload:\n{log_tail}"

    def staple(self, name: str, server_name: str) -> StapleCheck:
        host = self.host(name)
        ca = next(v["ca"] for v in host["vhosts"] if v["server_name"] == server_name)
        return check_staple(host["port"], server_name, self.lab.bundle(ca))

    def staples_until(self, name: str, expected: dict[str, str | None]) -> dict[str, StapleCheck]:
        """Poll s_client until every vhost shows the expected cert status (None: no staple), for a while.

        Right after a graceful reload a connection may still reach a worker of the old generation.
        """
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            seen = {server_name: self.staple(name, server_name) for server_name in expected}
            if all(staple_status(seen[server_name]) == wanted for server_name, wanted in expected.items()):
                return seen
            if time.monotonic() > deadline:
                return seen
            time.sleep(0.5)

    # ------------------------------------------------------------ back to pristine

    def reset(self, name: str) -> None:
        """The lab's pristine config (files tests added are removed too) and a restarted server."""
        self.lab.reset_host(name)


def expected_staples(host: dict, switched_off: set[str] = frozenset()) -> dict[str, str | None]:
    """The cert status s_client should see per vhost; None where no staple is sent."""
    expected = {}
    for vhost in host["vhosts"]:
        if vhost["server_name"] in switched_off or vhost["kind"] == "no-ocsp-url":
            expected[vhost["server_name"]] = None
        else:
            expected[vhost["server_name"]] = "revoked" if vhost["kind"] == "revoked" else "good"
    return expected


def staple_status(check: StapleCheck) -> str | None:
    """'good', 'revoked', ... when a staple was sent and the handshake worked; None without a staple."""
    if not check.handshake_ok:
        return "handshake failed"
    return check.cert_status if check.stapled else None


@contextmanager
def running_lab(host_count: int, prefix: str, start_state: str = "stapling", faults_back_to_ok: bool = False):
    """A lab of ``host_count`` hosts started for a test module, and a scratch directory for its Ansible runs (with
    their ansible-tmp), as (lab, scratch). Both go afterwards; with ``faults_back_to_ok`` the responders are set
    answering first, for a module whose tests make them fail."""
    lab = RunningLab(host_count, prefix=prefix, start_state=start_state)
    scratch = Path(tempfile.mkdtemp(prefix=prefix + "runs-"))
    (scratch / "ansible-tmp").mkdir()
    try:
        yield lab, scratch
    finally:
        if faults_back_to_ok:
            lab.cli("fault", "all", "ok", check=False)
        lab.stop()
        shutil.rmtree(scratch, ignore_errors=True)


@contextmanager
def lab_fleet(prefix: str, start_state: str = "stapling"):
    """A lab of HOST_NAMES started for the test module, its driver, and both cleaned away afterwards."""
    with running_lab(len(HOST_NAMES), prefix, start_state) as (lab, scratch):
        yield LabFleet(lab, scratch)


@pytest.fixture(scope="module")
def fleet():
    with lab_fleet("fleet-stapling-integration-") as running:
        yield running


@pytest.fixture
def host(fleet: LabFleet, host_name: str):
    """The lab host a test changes, put back to its pristine config and restarted afterwards."""
    yield fleet.host(host_name)
    fleet.reset(host_name)
