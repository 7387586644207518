#!/usr/bin/env python
"""Probe fan-out: ``ocsp_probe`` over many certificates while one responder hangs, against a runbook's loop.

Builds three lab CAs in a scratch directory, each with its own OCSP responder on loopback (ports from
``free_port_block``), issues ``--certificates`` leaves spread round-robin over them, and switches one responder
to ``hang`` for the whole run. Then, in turns, ``--repeat`` rounds of:

- ``ansible localhost -m ping`` (local connection): Ansible's own start-up, subtracted from the probe's time;
- ``ansible localhost -m fleet.stapling.ocsp_probe`` over every certificate, with ``--timeout`` seconds;
- the same over the answering responders' certificates only: the fan-out's own cost, which the hanging
  responder's timeout hides in the full run.

The baseline is what a runbook does: one ``openssl ocsp -issuer -cert -url -CAfile -timeout`` per certificate,
one after the other, with the same timeout. It runs once: every hanging certificate costs it a whole timeout,
which dwarfs the machine's noise.

Target: the probe, net of Ansible's start-up, takes at most the timeout plus one second. The probe's verdicts
are checked as well (the hanging responder's certificates ``timeout``, asked once; every other one healthy and
good), and a wrong verdict fails the bench. ``--profile`` runs the module's orchestration in this process under
cProfile with the same inputs and prints where the time goes. Usage:

    .venv/bin/python bench/probe_fanout_bench.py [--certificates 200] [--timeout 3] [--repeat 3] [--profile]
                                                 [--write [docs/benchmarks.md]]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import REPO, add_write_option, ansible_env, collections_dir, publish

sys.path.insert(0, str(REPO / "tests" / "lab"))

from fleetlab import pki, responder  # noqa: E402
from fleetlab.testing import free_port_block  # noqa: E402

SECTION = "## Probe fan-out: ocsp_probe against a loop of openssl ocsp, one responder hanging"
ANSIBLE = Path(sys.executable).with_name("ansible")
# CA name -> host name in its responder URL (both loopback): "localhost" makes the probe resolve a name too.
CAS = {"alpha": "127.0.0.1", "beta": "localhost", "gamma": "127.0.0.1"}
HANGING = "gamma"
_ADHOC_RESULT = re.compile(r"^\S+ \| (SUCCESS|CHANGED|FAILED!) => ", re.MULTILINE)


class Responders:
    """One lab responder per CA, started as processes on a free block of ports; ``stop`` ends them."""

    def __init__(self, scratch: Path):
        self.pki_dir = scratch / "pki"
        self.run_dir = scratch / "responders"
        self.run_dir.mkdir(parents=True)
        base_port = free_port_block(len(CAS))
        self.cas: dict[str, pki.CaFiles] = {}
        self.mode_files: dict[str, Path] = {}
        self.logs: dict[str, Path] = {}
        self.processes: list[subprocess.Popen] = []
        for offset, (name, host) in enumerate(CAS.items()):
            port = base_port + offset
            self.cas[name] = pki.build_ca(self.pki_dir, name, f"http://{host}:{port}/")
            self.mode_files[name] = self.run_dir / f"{name}.mode"
            self.logs[name] = self.run_dir / f"{name}.log"
            self.mode_files[name].write_text("ok\n")
            command = responder.responder_command(self.cas[name].dir, port, self.mode_files[name],
                                                  log_file=self.logs[name])
            self.processes.append(subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                                   stderr=subprocess.DEVNULL, start_new_session=True))
        for name in CAS:
            responder.wait_until_applied(self.mode_files[name], "ok", timeout=15)

    def url(self, name: str) -> str:
        return self.cas[name].ocsp_url

    def hang(self, name: str) -> None:
        responder.set_mode(self.mode_files[name], "hang")

    def requests_in_mode(self, name: str, mode: str) -> int:
        """Requests the responder logged while in ``mode`` so far."""
        return self.logs[name].read_text().count(f" mode={mode} ") if self.logs[name].exists() else 0

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class Leaf:
    """One issued certificate: its CA, files and the responder its AIA names."""

    def __init__(self, ca_name: str, files: pki.LeafFiles, issuer_pem: Path, bundle_pem: Path):
        self.ca_name = ca_name
        self.cert_pem = files.cert_pem
        self.url = files.ocsp_url
        self.serial_hex = files.serial_hex.upper()
        self.issuer_pem = issuer_pem
        self.bundle_pem = bundle_pem


def issue_leaves(responders: Responders, count: int) -> list[Leaf]:
    """``count`` leaves spread round-robin over the CAs."""
    names = list(CAS)
    leaves = []
    for index in range(count):
        ca = responders.cas[names[index % len(names)]]
        files = pki.issue_leaf(ca, f"site{index:04d}", [f"site{index:04d}.{ca.name}.fanout.test"])
        leaves.append(Leaf(ca.name, files, ca.intermediate_pem, ca.bundle_pem))
    return leaves


def ca_bundle(responders: Responders, scratch: Path) -> Path:
    """Every CA's intermediate and root in one PEM file: where the probe finds the issuers."""
    bundle = scratch / "ca-bundle.pem"
    bundle.write_bytes(b"".join(ca.bundle_pem.read_bytes() for ca in responders.cas.values()))
    return bundle


def probe_args(leaves: list[Leaf], bundle: Path, timeout: float) -> dict:
    return {"certificates": [{"path": str(leaf.cert_pem)} for leaf in leaves], "ca_bundle": str(bundle),
            "timeout": timeout}


# ---------------------------------------------------------------------------------------------- the runs


def adhoc(env: dict, module: str, args: dict | None = None) -> tuple[float, dict]:
    """Wall time of ``ansible localhost -m MODULE`` over a local connection, and the module's result."""
    command = [str(ANSIBLE), "localhost", "-i", "localhost,", "-c", "local", "-m", module,
               "-e", f"ansible_python_interpreter={sys.executable}"]
    if args is not None:
        command += ["-a", json.dumps(args)]
    started = time.perf_counter()
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
    elapsed = time.perf_counter() - started
    match = _ADHOC_RESULT.search(completed.stdout)
    if completed.returncode != 0 or not match:
        raise SystemExit(f"{module} failed ({completed.returncode}):\n{completed.stdout[-4000:]}{completed.stderr[-2000:]}")
    return elapsed, json.loads(completed.stdout[match.end():])


def openssl_loop(leaves: list[Leaf], timeout: float) -> tuple[float, list[str]]:
    """The runbook's loop: one ``openssl ocsp`` per certificate, in turn. Wall time and what each one said."""
    said = []
    started = time.perf_counter()
    for leaf in leaves:
        completed = subprocess.run(
            ["openssl", "ocsp", "-issuer", str(leaf.issuer_pem), "-cert", str(leaf.cert_pem), "-url", leaf.url,
             "-CAfile", str(leaf.bundle_pem), "-timeout", str(int(timeout))],
            capture_output=True, text=True, timeout=timeout + 30, check=False)
        said.append(completed.stdout + completed.stderr)
    return time.perf_counter() - started, said


def judgement_problems(result: dict, leaves: list[Leaf], hanging_url: str | None) -> list[str]:
    """What the probe got wrong: the hanging responder's certificates must time out, every other one be good."""
    problems = []
    reports = result["certificates"]
    if len(reports) != len(leaves):
        return [f"{len(reports)} certificate reports for {len(leaves)} certificates"]
    for leaf, report in zip(leaves, reports):
        if leaf.url == hanging_url:
            wanted = (False, "timeout")
        else:
            wanted = (True, None)
        found = (report["healthy"], report["error_class"])
        if found != wanted or report["serial"] != leaf.serial_hex:
            problems.append(f"{leaf.cert_pem.name} ({leaf.ca_name}): healthy/error_class {found}, wanted {wanted}: "
                            f"{report['message']}")
        elif leaf.url != hanging_url and ((report["ocsp"] or {}).get("cert_status") != "good" or not report["probed"]):
            problems.append(f"{leaf.cert_pem.name}: not asked separately or not good: {report['message']}")
    by_url = {entry["url"]: entry for entry in result["responders"]}
    wanted_unhealthy = [hanging_url] if hanging_url in by_url else []
    if wanted_unhealthy and by_url[hanging_url]["error_class"] != "timeout":
        problems.append(f"the hanging responder is not judged a timeout: {by_url[hanging_url]['message']}")
    if result["summary"]["unhealthy_urls"] != wanted_unhealthy:
        problems.append(f"unhealthy responders {result['summary']['unhealthy_urls']}, wanted {wanted_unhealthy}")
    return problems


def baseline_problems(said: list[str], leaves: list[Leaf], hanging_url: str) -> list[str]:
    """The baseline must see the same thing, or it is not measuring the same work."""
    problems = []
    for leaf, output in zip(leaves, said):
        good = f"{leaf.cert_pem}: good" in output
        if good == (leaf.url == hanging_url):
            problems.append(f"openssl ocsp on {leaf.cert_pem.name} ({leaf.ca_name}): {output.strip()[-300:]}")
    return problems


def profile_in_process(collections: Path, leaves: list[Leaf], bundle: Path, timeout: float, top: int) -> str:
    """The module's orchestration with the same inputs, in this process under cProfile: the top entries."""
    sys.path.insert(0, str(collections))
    from ansible_collections.fleet.stapling.plugins.module_utils import ocsp_probe_run  # noqa: E402

    args = probe_args(leaves, bundle, timeout)
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    bundle_certs = ocsp_probe_run.load_ca_bundle(args["ca_bundle"])
    items = ocsp_probe_run.load_certificate_items(args["certificates"], bundle_certs)
    loaded = time.perf_counter()
    result = ocsp_probe_run.run(items, ocsp_probe_run.Settings(timeout=timeout, environ={}), ca_bundle_certs=bundle_certs)
    ran = time.perf_counter()
    json.dumps(result)
    profiler.disable()
    done = time.perf_counter()
    out = io.StringIO()
    out.write(f"in process: loading {loaded - started:.3f} s, run {ran - loaded:.3f} s "
              f"(summary.elapsed {result['summary']['elapsed']:.3f} s), JSON {done - ran:.3f} s\n")
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


# ---------------------------------------------------------------------------------------------- report


def render(figures: dict, options: argparse.Namespace) -> str:
    target = options.timeout + 1
    net = figures["net"]
    lines = [
        SECTION, "",
        f"`.venv/bin/python bench/probe_fanout_bench.py --certificates {options.certificates} --timeout "
        f"{options.timeout:g} --repeat {options.repeat}` on {os.cpu_count()} cores: {options.certificates} leaf "
        f"certificates spread over {len(CAS)} lab CAs and their OCSP responders on loopback, one responder hanging "
        f"for the whole run, a timeout of {options.timeout:g} s. The module runs as an operator runs it "
        "(`ansible localhost -m fleet.stapling.ocsp_probe`, local connection); Ansible's start-up is an "
        "`ansible localhost -m ping` measured in the same round, and the round with the smallest difference counts. The baseline is a runbook's "
        "loop of `openssl ocsp -timeout` calls over the same certificates, one after the other, run once. "
        f"Target: the probe net of Ansible's start-up at most the timeout plus one second ({target:g} s).",
        "",
        "| run | wall time | against the openssl loop |",
        "|---|---|---|",
        f"| loop of `openssl ocsp` (baseline) | {figures['baseline']:.2f} s | 1.00x |",
        f"| `ansible -m ocsp_probe` | {figures['probe']:.2f} s | {figures['probe'] / figures['baseline']:.3f}x |",
        f"| `ansible -m ping` in the same round (Ansible's start-up) | {figures['ping']:.2f} s | |",
        f"| ocsp_probe net of start-up | {net:.2f} s | {net / figures['baseline']:.3f}x |",
        f"| the module's own `summary.elapsed` | {figures['elapsed']:.2f} s | |",
        f"| ocsp_probe, answering responders' {options.certificates - figures['hanging']} certificates only, net "
        f"(`summary.elapsed`) | {figures['fan_out_net']:.2f} s ({figures['fan_out_elapsed']:.2f} s) | |",
        "",
        f"Target {'met' if net <= target else 'MISSED'}: {net:.2f} s against {target:g} s.",
        "",
    ]
    if figures["problems"]:
        lines.append(f"Verdicts WRONG: up to {figures['wrong']} per run (of {options.certificates} certificates), "
                     f"for example: {figures['problems'][0]}")
    else:
        lines.append(f"Verdicts right in every run: the hanging responder was asked once and its {figures['hanging']} "
                     f"certificates came back `timeout`; the other {options.certificates - figures['hanging']} were "
                     "each asked and good.")
    for note in options.note:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--certificates", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="also profile the orchestration in this process")
    parser.add_argument("--profile-top", type=int, default=25)
    parser.add_argument("--skip-baseline", action="store_true", help="leave out the openssl loop (while profiling)")
    parser.add_argument("--note", action="append", default=[],
                        help="a paragraph to add under the figures (for example the figures before a fix)")
    add_write_option(parser)
    options = parser.parse_args()
    if options.timeout != int(options.timeout):
        parser.error("--timeout must be whole seconds: openssl ocsp -timeout takes no fraction")
    scratch = Path(tempfile.mkdtemp(prefix="probe-fanout-", dir="/tmp"))
    responders = None
    try:
        responders = Responders(scratch)
        leaves = issue_leaves(responders, options.certificates)
        bundle = ca_bundle(responders, scratch)
        collections = collections_dir(scratch)
        (scratch / "ansible-tmp").mkdir()
        # Loopback only: a proxy from this machine's environment must not come between client and responders.
        env = {key: value for key, value in ansible_env(collections).items() if key.lower() != "http_proxy"}
        env.update(ANSIBLE_LOCAL_TEMP=str(scratch / "ansible-tmp"), ANSIBLE_REMOTE_TEMP=str(scratch / "ansible-tmp"))
        responders.hang(HANGING)
        hanging_url = responders.url(HANGING)
        hanging = sum(leaf.url == hanging_url for leaf in leaves)
        args = probe_args(leaves, bundle, options.timeout)
        figures: dict = {"hanging": hanging, "problems": [], "wrong": 0}
        for _round in range(options.repeat):  # taking turns, so that the machine's noise weighs on both alike
            ping, _result = adhoc(env, "ping")
            before = responders.requests_in_mode(HANGING, "hang")
            probe, result = adhoc(env, "fleet.stapling.ocsp_probe", args)
            hang_requests = responders.requests_in_mode(HANGING, "hang") - before
            problems = judgement_problems(result, leaves, hanging_url)
            if hang_requests != 1:
                problems.append(f"the hanging responder was asked {hang_requests} times, not once")
            print(f"round {_round + 1}: ping {ping:.2f} s, ocsp_probe {probe:.2f} s "
                  f"(summary.elapsed {result['summary']['elapsed']:.2f} s), hanging responder asked {hang_requests}x, "
                  f"{len(problems)} wrong verdicts", flush=True)
            figures["wrong"] = max(figures["wrong"], len(problems))
            figures["problems"].extend(problems)
            answering = [leaf for leaf in leaves if leaf.url != hanging_url]
            fan_out, fan_out_result = adhoc(env, "fleet.stapling.ocsp_probe", probe_args(answering, bundle, options.timeout))
            fan_out_problems = judgement_problems(fan_out_result, answering, None)
            print(f"          answering responders only: ocsp_probe {fan_out:.2f} s (summary.elapsed "
                  f"{fan_out_result['summary']['elapsed']:.2f} s), {len(fan_out_problems)} wrong verdicts", flush=True)
            figures["problems"].extend(fan_out_problems)
            figures["wrong"] = max(figures["wrong"], len(fan_out_problems))
            # Net figures pair each run with the ping of its own round, and the best round counts.
            if fan_out - ping < figures.get("fan_out_net", float("inf")):
                figures.update(fan_out_net=fan_out - ping, fan_out_elapsed=fan_out_result["summary"]["elapsed"])
            if probe - ping < figures.get("net", float("inf")):
                figures.update(net=probe - ping, probe=probe, ping=ping, elapsed=result["summary"]["elapsed"])
        if options.profile:
            print(profile_in_process(collections, leaves, bundle, options.timeout, options.profile_top))
        if options.skip_baseline:
            return 1 if figures["problems"] else 0
        figures["baseline"], said = openssl_loop(leaves, options.timeout)
        problems = baseline_problems(said, leaves, hanging_url)
        if problems:
            raise SystemExit("the openssl loop did not see what the probe saw:\n" + "\n".join(problems[:20]))
    finally:
        if responders is not None:
            responders.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    text = render(figures, options)
    publish(text, SECTION, options.write)
    if figures["problems"]:
        print("ocsp_probe judged wrongly:\n" + "\n".join(figures["problems"][:20]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
