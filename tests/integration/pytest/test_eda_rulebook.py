"""The event-driven trigger: extensions/eda's rulebook and its Alertmanager source, run by ansible-rulebook.

ansible-rulebook lives in its own virtualenv (.venv-eda, made by tests/tools/install_eda.sh) because its pins
are not the test toolchain's. The schema test and the source's HTTP test need only that venv; the end-to-end
test also needs Java, and drives the real lab: Alertmanager's webhook POSTs go to the rulebook's listener on
loopback, the playbooks reach the lab's hosts over SSH, and what clients see is read with s_client.
"""

from __future__ import annotations

import importlib.util
import json
import os
import select
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from conftest import COLLECTIONS_ROOT, REPO_ROOT, expected_staples, lab_fleet
from playbook_runs import ALPHA_OCSP_HOST, assert_clients_see, assert_untouched, host_state, server_names

EDA_VENV = Path(os.environ.get("FLEET_STAPLING_EDA_VENV", REPO_ROOT / ".venv-eda"))
EDA_BIN = EDA_VENV / "bin"
EDA_DIR = REPO_ROOT / "extensions" / "eda"
RULEBOOK = EDA_DIR / "rulebooks" / "stapling_responder_outage.yml"
SOURCE_PLUGIN = EDA_DIR / "plugins" / "event_source" / "alertmanager.py"
LISTEN_PORTS = range(18900, 19000)
PLAYBOOK_SECONDS = 300
# ansible-rulebook logs a failed run's output a second time, so each count holds only while the runs succeed.
DISABLE_PLAY = "PLAY [Switch OCSP stapling off]"
ENABLE_PLAY = "PLAY [Switch OCSP stapling on where the responder is healthy]"


def missing(reason: str) -> None:
    """Skip for a developer who has not installed ansible-rulebook; fail in CI, whose bootstrap installs it."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI must run this test)")
    pytest.skip(reason)


# Module-scoped, and named before the lab in a test's arguments, so that a skip comes before a lab is started.
@pytest.fixture(scope="module")
def eda_venv() -> Path:
    if not (EDA_BIN / "ansible-rulebook").exists():
        missing(f"no ansible-rulebook in {EDA_VENV}: run tests/tools/install_eda.sh (bootstrap does)")
    return EDA_VENV


@pytest.fixture(scope="module")
def java() -> str:
    found = shutil.which("java")
    if found is None:
        missing("no java on PATH: ansible-rulebook needs a JDK 17+ (tests/tools/install_eda.sh installs one)")
    return found


def load_source_plugin():
    """The source plugin as a module; its helpers need nothing beyond the standard library."""
    spec = importlib.util.spec_from_file_location("fleet_stapling_alertmanager_source", SOURCE_PLUGIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_listen_port() -> int:
    for port in LISTEN_PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError(f"no free port in {LISTEN_PORTS} on loopback")


def notification(status: str, alerts: list[dict]) -> dict:
    """An Alertmanager webhook body (version 4) holding ``alerts``."""
    return {
        "version": "4", "groupKey": "{}:{alertname=\"StaplingResponderDown\"}", "truncatedAlerts": 0,
        "status": status, "receiver": "fleet-stapling-eda", "groupLabels": {"alertname": "StaplingResponderDown"},
        "commonLabels": {"alertname": "StaplingResponderDown"}, "commonAnnotations": {},
        "externalURL": "http://alertmanager.invalid:9093", "alerts": alerts,
    }


def responder_alert(status: str, ocsp_host: str, instance: str, family: str = "ipv4") -> dict:
    return {
        "status": status,
        "labels": {"alertname": "StaplingResponderDown", "ocsp_host": ocsp_host, "instance": instance,
                   "family": family, "severity": "warning"},
        "annotations": {"summary": f"OCSP responder {ocsp_host} does not answer"},
        "startsAt": "2026-12-03T14:00:00Z",
        "endsAt": "2026-12-03T15:00:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.invalid:9090/graph", "fingerprint": f"{abs(hash(instance)):016x}",
    }


def post(port: int, body: bytes, token: str = "") -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/alerts", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy in between
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait_until_listening(port: int, process: subprocess.Popen, log: Path, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the listener exited ({process.returncode}) before listening:\n{log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"nothing listens on port {port} after {seconds} s")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


# ---------------------------------------------------------------- the source's helpers (no venv needed)


def test_source_makes_one_event_per_alert_in_ansible_eda_shape_without_secrets():
    plugin = load_source_plugin()
    alerts = [responder_alert("firing", "ocsp.alpha.test", "web1:9100"),
              responder_alert("firing", "ocsp.alpha.test", "web2:9100", "ipv6")]
    body = json.dumps(notification("firing", alerts)).encode()

    events = plugin.events_of(plugin.alerts_of(body), "alerts", {"Authorization": "Bearer s3cret", "X-A": "1"})

    assert [event["alert"] for event in events] == alerts
    assert all(event["meta"] == {"endpoint": "alerts", "headers": {"X-A": "1"}} for event in events), events
    limited = plugin.events_of(alerts, "alerts", {}, data_host_path="labels.instance")
    assert [event["meta"]["hosts"] for event in limited] == [["web1"], ["web2"]]
    assert "hosts" not in plugin.events_of([{"labels": {}}], "", {}, "labels.instance")[0]["meta"]


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"alerts": {}}', b'{"alerts": ["x"]}', b"{}"])
def test_source_refuses_a_body_that_is_not_a_notification(body):
    plugin = load_source_plugin()
    with pytest.raises(plugin.BadNotification):
        plugin.alerts_of(body)


def test_source_checks_the_bearer_token_only_when_one_is_set():
    plugin = load_source_plugin()
    assert plugin.authorized("", "")
    assert plugin.authorized("Bearer s3cret", "s3cret")
    assert plugin.authorized("bearer s3cret", "s3cret")
    assert not plugin.authorized("", "s3cret")
    assert not plugin.authorized("Bearer wrong", "s3cret")
    assert not plugin.authorized("Basic s3cret", "s3cret")


# ---------------------------------------------------------------- ansible-rulebook's own schema (no Java needed)


def test_rulebook_is_valid_against_ansible_rulebooks_own_schema(eda_venv):
    # ansible-rulebook ships the schema it validates rulebooks with; ask its venv where it is, without importing
    # the engine (which would start Java).
    located = subprocess.run(
        [str(EDA_BIN / "python"), "-c", "import importlib.util, pathlib; "
         "print(pathlib.Path(importlib.util.find_spec('ansible_rulebook').origin).parent)"],
        capture_output=True, text=True, timeout=60, check=True)
    schema_file = Path(located.stdout.strip()) / "schema" / "ruleset_schema.json"
    checked = subprocess.run(
        [str(EDA_BIN / "python"), "-c", "import json, sys, yaml, jsonschema; "
         "jsonschema.validate(yaml.safe_load(open(sys.argv[2])), json.load(open(sys.argv[1]))); print('valid')",
         str(schema_file), str(RULEBOOK)],
        capture_output=True, text=True, timeout=60, check=False)
    assert checked.returncode == 0 and checked.stdout.strip() == "valid", checked.stdout + checked.stderr

    rules = {rule["name"]: rule for ruleset in yaml.safe_load(RULEBOOK.read_text()) for rule in ruleset["rules"]}
    playbooks = {rule["action"]["run_playbook"]["name"] for rule in rules.values()}
    assert playbooks == {"fleet.stapling.disable_stapling", "fleet.stapling.enable_stapling"}
    for rule in rules.values():
        assert rule["throttle"]["group_by_attributes"] == ["event.alert.labels.ocsp_host"], rule
        assert rule["action"]["run_playbook"]["extra_vars"]["stapling_ocsp_hosts"] == [
            "{{ event.alert.labels.ocsp_host }}"], rule


def test_source_serves_alertmanager_posts_under_ansible_rulebooks_python(eda_venv, tmp_path):
    port = free_listen_port()
    log = tmp_path / "source.log"
    with log.open("w") as output:
        source = subprocess.Popen([str(EDA_BIN / "python"), str(SOURCE_PLUGIN), str(port), "s3cret"],
                                  stdout=subprocess.PIPE, stderr=output)
    try:
        wait_until_listening(port, source, log)
        storm = [responder_alert("firing", "127.0.0.1", f"web{n}:9100") for n in (1, 2, 3)]
        body = json.dumps(notification("firing", storm)).encode()

        assert post(port, body)[0] == 401
        assert post(port, b"not json", "s3cret")[0] == 400
        assert post(port, body, "s3cret") == (202, "queued 3 alert(s)\n")

        printed = b""
        deadline = time.monotonic() + 10
        while printed.count(b"\n") < 3 and time.monotonic() < deadline:
            if select.select([source.stdout], [], [], 0.5)[0]:
                printed += os.read(source.stdout.fileno(), 65536)
    finally:
        stop(source)
    events = [json.loads(line) for line in printed.splitlines()]
    assert [event["alert"] for event in events] == storm, log.read_text()
    assert all(event["meta"]["endpoint"] == "alerts" for event in events)
    assert all("Authorization" not in event["meta"]["headers"] for event in events)


# ---------------------------------------------------------------- end to end on the lab


@pytest.fixture(scope="module")
def fleet():
    with lab_fleet("eda15") as running:
        yield running


class Rulebook:
    """ansible-rulebook running the collection's rulebook (by its collection name) against the lab inventory."""

    def __init__(self, fleet, scratch: Path):
        self.port = free_listen_port()
        self.report_dir = scratch / "reports"
        self.log = scratch / "ansible-rulebook.log"
        rulebook_vars = {"stapling_eda_port": self.port, "stapling_eda_target_hosts": "web2:web3",
                         "stapling_eda_report_dir": str(self.report_dir)}
        vars_file = scratch / "rulebook-vars.json"
        vars_file.write_text(json.dumps(rulebook_vars))
        env = {key: value for key, value in fleet.env.items() if key.lower() not in ("http_proxy", "https_proxy")}
        # ansible-galaxy (to find the collection) and ansible-playbook (for ansible-runner) come from the venv
        env.update(PATH=f"{EDA_BIN}{os.pathsep}{env['PATH']}", ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_ROOT)
        with self.log.open("w") as output:
            self.process = subprocess.Popen(
                [str(EDA_BIN / "ansible-rulebook"), "-r", "fleet.stapling.stapling_responder_outage",
                 "-i", str(fleet.lab.inventory), "--vars", str(vars_file)],
                cwd=scratch, env=env, stdout=output, stderr=subprocess.STDOUT)
        wait_until_listening(self.port, self.process, self.log)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def send(self, status: str, alerts: list[dict]) -> None:
        code, text = post(self.port, json.dumps(notification(status, alerts)).encode())
        assert code == 202, f"{code} {text}\n{self.output()[-3000:]}"

    def wait_for_report(self, name: str) -> dict:
        """The fleet report the playbook writes as its last step."""
        report = self.report_dir / f"{name}.json"
        deadline = time.monotonic() + PLAYBOOK_SECONDS
        while not report.exists():
            assert self.process.poll() is None, f"ansible-rulebook exited:\n{self.output()[-5000:]}"
            assert time.monotonic() < deadline, f"no {name} report after {PLAYBOOK_SECONDS} s:\n{self.output()[-5000:]}"
            time.sleep(0.5)
        return json.loads(report.read_text())  # ansible.builtin.copy renames it into place whole


def test_alert_storm_switches_one_cas_sites_off_once_and_the_resolution_switches_them_back(
        eda_venv, java, fleet, tmp_path):
    hosts = {name: fleet.host(name) for name in ("web2", "web3")}
    web1_before = host_state(fleet, "web1")
    rulebook = Rulebook(fleet, tmp_path)
    try:
        fleet.lab.cli("fault", "alpha", "down")
        # the storm: every monitoring host and address family alerts, in one notification and again in the next
        storm = [responder_alert("firing", ALPHA_OCSP_HOST, f"web{n}:9100", family)
                 for n in (1, 2, 3) for family in ("ipv4", "ipv6")]
        rulebook.send("firing", storm)
        rulebook.send("firing", storm[:3])

        disabled = rulebook.wait_for_report("disable_stapling")

        assert {row["host"]: row["status"] for row in disabled["hosts"]} == {"web2": "changed", "web3": "changed"}
        for name, host in hosts.items():
            assert_clients_see(fleet, name, expected_staples(host, switched_off=server_names(host, ca="alpha")))

        fleet.lab.cli("fault", "alpha", "ok")
        rulebook.send("resolved", [dict(alert, status="resolved") for alert in storm])

        enabled = rulebook.wait_for_report("enable_stapling")

        assert {row["host"]: row["status"] for row in enabled["hosts"]} == {"web2": "changed", "web3": "changed"}
        for name, host in hosts.items():
            assert_clients_see(fleet, name, expected_staples(host))
        # actions run one at a time in event order, so a second switch-off would have run before the switch-on
        output = rulebook.output()
        assert output.count(DISABLE_PLAY) == 1, output[-5000:]
        assert output.count(ENABLE_PLAY) == 1, output[-5000:]
        assert_untouched(fleet, "web1", web1_before)
    finally:
        stop(rulebook.process)
        fleet.lab.cli("fault", "alpha", "ok")
        for name in ("web1", "web2", "web3"):
            fleet.reset(name)
