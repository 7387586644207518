"""The monitoring export on the lab: fleet_stapling.prom written over SSH and read the way Prometheus reads it.

A one-host lab whose CA alpha's responder hangs while beta's answers. playbooks/write_metrics.yml (a host play
ending with the collection's playbooks/tasks/write_metrics.yml, as the playbooks end theirs) runs the probe and
the error-log reader and writes the file; the file is parsed with prometheus_client's parser and its values are
checked against what the lab does. A change play run next, which checks only the staples, must leave the
probe's responder samples as they were; check mode must write nothing, except for an info play, which always
runs in check mode and records its run.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import COLLECTIONS_ROOT, running_lab
from fleetlab.testing import RunningLab

PLAYBOOK = Path(__file__).resolve().parent / "playbooks" / "write_metrics.yml"
HOST = "web1"
FILE_NAME = "fleet_stapling.prom"


class MetricsLab:
    """The one-host lab, its textfile directory, and the test play run over the lab's SSH."""

    def __init__(self, lab: RunningLab, scratch: Path):
        self.lab = lab
        self.scratch = scratch
        self.textfile_dir = scratch / "node-exporter" / "textfile"  # made by the module
        self.runs = 0
        # The lab is on loopback: proxies of the machine running the tests must not interfere.
        environ = {key: value for key, value in os.environ.items() if key.lower() not in ("http_proxy", "no_proxy")}
        self.env = dict(environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_ROOT, ANSIBLE_NOCOLOR="1",
                        ANSIBLE_LOCAL_TEMP=str(scratch / "ansible-tmp"), ANSIBLE_RETRY_FILES_ENABLED="0")
        self.env.pop("ANSIBLE_PYTHON_INTERPRETER", None)

    @property
    def metrics_file(self) -> Path:
        return self.textfile_dir / FILE_NAME

    def responder(self, ca: str) -> dict:
        return self.lab.state["responders"][ca]

    def vhost_names(self, kind: str) -> list[str]:
        return [v["server_name"] for v in self.lab.host(HOST)["vhosts"] if v["kind"] == kind]

    def play(self, kind: str, check: bool = False, diff: bool = False) -> tuple[dict, str]:
        """(the registered results of the play, its output)."""
        self.runs += 1
        result_dir = self.scratch / f"run{self.runs}"
        result_dir.mkdir()
        extra_vars = {"metrics_kind": kind, "stapling_metrics_dir": str(self.textfile_dir),
                      "result_dir": str(result_dir)}
        command = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(self.lab.inventory),
                   "--limit", HOST, str(PLAYBOOK), "-e", json.dumps(extra_vars)] + ["--check"] * check + ["--diff"] * diff
        completed = subprocess.run(command, env=self.env, cwd=self.scratch, capture_output=True, text=True,
                                   timeout=300, check=False)
        output = completed.stdout + completed.stderr
        assert completed.returncode == 0, output
        assert "...ignoring" not in output, f"the metrics task failed:\n{output}"
        return json.loads((result_dir / f"{HOST}.json").read_text()), output


def metric_values(text: str) -> dict[str, dict[frozenset, float]]:
    """{family: {labels: value}} as prometheus_client's parser reads the file."""
    found = {}
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge", family.name
        assert family.documentation, f"{family.name} has no HELP"
        found[family.name] = {frozenset(sample.labels.items()): sample.value for sample in family.samples}
    return found


def only(samples: dict[frozenset, float], **wanted: str) -> dict[frozenset, float]:
    return {key: value for key, value in samples.items() if set(wanted.items()) <= key}


def vhost_value(values: dict, family: str, vhost: str) -> float:
    matching = only(values[family], vhost=vhost)
    assert len(matching) == 1, f"{family}: {len(matching)} samples for {vhost}"
    return next(iter(matching.values()))


@pytest.fixture(scope="module")
def lab():
    with running_lab(1, "metrics15-", faults_back_to_ok=True) as (running, scratch):
        yield MetricsLab(running, scratch)


def test_probe_then_change_play_write_a_file_prometheus_reads(lab):
    alpha_url, beta_url = lab.responder("alpha")["url"], lab.responder("beta")["url"]
    # A first probe with every responder up: the file is new, and Apache's handshakes fill its staple cache. (With
    # an empty cache, a handshake that fetches from a hanging responder holds mod_ssl's stapling lock, and every
    # other vhost's handshake waits behind it.)
    lab.play("probe")
    healthy_before = metric_values(lab.metrics_file.read_text())["fleet_stapling_responder_healthy"]
    assert only(healthy_before, responder=alpha_url, family="ipv4").popitem()[1] == 1

    lab.lab.cli("fault", "alpha", "hang")
    try:
        started = time.time()
        results, _output = lab.play("probe")
        finished = time.time()
    finally:
        lab.lab.cli("fault", "alpha", "ok")
    values = metric_values(lab.metrics_file.read_text())

    # the hanging responder is down over IPv4 (its host name is an IPv4 address: no IPv6 series), beta is up
    healthy = values["fleet_stapling_responder_healthy"]
    assert only(healthy, responder=alpha_url) == {
        frozenset({"ocsp_host": "127.0.0.1", "responder": alpha_url, "family": "ipv4"}.items()): 0}
    assert only(healthy, responder=beta_url, family="ipv4") == {
        frozenset({"ocsp_host": "localhost", "responder": beta_url, "family": "ipv4"}.items()): 1}
    latency = values["fleet_stapling_responder_latency_seconds"]
    assert not only(latency, responder=alpha_url), "a responder that never answered has no latency"
    assert 0 < next(iter(only(latency, responder=beta_url, family="ipv4").values())) < 2

    # beta's site staples a good answer (from Apache's cache) valid for a while; the site without an OCSP URL
    # staples nothing
    www_beta = next(name for name in lab.vhost_names("normal") if name.startswith("www-beta"))
    assert vhost_value(values, "fleet_stapling_vhost_staple_served", www_beta) == 1
    assert vhost_value(values, "fleet_stapling_vhost_staple_next_update_seconds", www_beta) > 0
    assert only(values["fleet_stapling_vhost_staple_served"], vhost=www_beta, ocsp_host="localhost")
    for name in lab.vhost_names("no-ocsp-url"):
        assert only(values["fleet_stapling_vhost_staple_served"], vhost=name) == {
            frozenset({"vhost": name, "port": str(lab.lab.host(HOST)["port"]), "ocsp_host": ""}.items()): 0}

    # the log counts are the reader's recent counts; the run is stamped with its time and success
    recent_counts = results["log"]["summary"]["recent_counts"]
    assert values.get("fleet_stapling_apache_log_errors_recent", {}) == {
        frozenset({"code": code}.items()): count for code, count in recent_counts.items()}
    stamp = values["fleet_stapling_last_run_timestamp_seconds"][frozenset({"play": "probe"}.items())]
    assert started - 1 <= stamp <= finished + 1
    assert values["fleet_stapling_last_run_success"] == {frozenset({"play": "probe"}.items()): 1}

    # a file node_exporter (another user) can read, put in place whole, in a directory the module made
    assert stat.S_IMODE(lab.metrics_file.stat().st_mode) == 0o644
    assert stat.S_IMODE(lab.textfile_dir.stat().st_mode) == 0o755
    assert os.listdir(lab.textfile_dir) == [FILE_NAME]

    # the change play checks only the staples: the responder samples stay as the probe saw them, although
    # alpha answers again now
    _results, _output = lab.play("change")
    after_change = metric_values(lab.metrics_file.read_text())
    for family in ("fleet_stapling_responder_healthy", "fleet_stapling_responder_latency_seconds"):
        assert after_change[family] == values[family], family
    assert after_change.get("fleet_stapling_apache_log_errors_recent", {}) == values.get(
        "fleet_stapling_apache_log_errors_recent", {})
    stamps = after_change["fleet_stapling_last_run_timestamp_seconds"]
    assert stamps[frozenset({"play": "probe"}.items())] == stamp
    assert stamps[frozenset({"play": "change"}.items())] >= finished
    assert after_change["fleet_stapling_last_run_success"][frozenset({"play": "change"}.items())] == 1
    assert vhost_value(after_change, "fleet_stapling_vhost_staple_served", www_beta) == 1


def test_check_mode_writes_nothing_but_an_info_play_records_its_run(lab):
    if not lab.metrics_file.exists():
        lab.play("info")
    before = lab.metrics_file.read_bytes()
    before_stat = lab.metrics_file.stat()

    _results, output = lab.play("probe", check=True, diff=True)
    task_output = output.split("TASK [Write this host's stapling metrics for node_exporter]", 1)[1].split("TASK [", 1)[0]
    # the diff shows what would be written: the probe's run stamped anew
    assert f"--- before: {lab.metrics_file}" in task_output
    assert '+fleet_stapling_last_run_timestamp_seconds{play="probe"}' in task_output
    assert f"changed: [{HOST}]" in task_output
    assert lab.metrics_file.read_bytes() == before
    assert lab.metrics_file.stat().st_ino == before_stat.st_ino
    assert os.listdir(lab.textfile_dir) == [FILE_NAME]

    # audit_stapling.yml runs in check mode by design; what it read is real, so its run is recorded
    _results, _output = lab.play("info", check=True)
    after = metric_values(lab.metrics_file.read_text())
    assert frozenset({"play": "info"}.items()) in after["fleet_stapling_last_run_timestamp_seconds"]
    before_values = metric_values(before.decode())
    for family, samples in before_values.items():
        if not family.startswith("fleet_stapling_last_run_"):
            assert after[family] == samples, family
