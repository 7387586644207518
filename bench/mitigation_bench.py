#!/usr/bin/env python
"""Time to mitigation: from the moment CA alpha's responder starts hanging, how long until every affected vhost
of a lab fleet completes a TLS handshake in under 100 ms again, and stays that fast, with the incident playbook
started at once; the runbook's naive playbook is the baseline, measured in the same run.

Starts a lab of ``--hosts`` hosts (every one stapling), then takes turns, ``--repeat`` rounds, between
``bench/baseline/naive_disable_stapling.yml`` and ``playbooks/disable_stapling.yml`` (forced). A round:

- every host is reset (pristine config, restarted, so its stapling cache is empty);
- alpha's responder is switched to ``hang`` (the fault start), the playbook is started at once;
- meanwhile every affected vhost (CA alpha, with an OCSP URL) gets a TLS handshake every 0.5 s, three at most
  under way at once (the first may take 15 s, the others give up after 1 s), each asking for a staple as a
  browser does: mod_ssl only fetches a response, and so only stalls, when the client asks for one; a handshake
  that asks for none is fast throughout;
- probing ends with three handshakes per vhost started once the playbook has ended and settled; a vhost counts
  as mitigated from the first handshake after which every one started was under 100 ms. The time to mitigation
  is when the last vhost got there, from the fault start. The longest handshake seen shows the outage was real.

Alpha's responder answers again at the end of each round. Usage:

    .venv/bin/python bench/mitigation_bench.py [--hosts 20] [--forks 5] [--repeat 1] [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from OpenSSL import SSL

from benchlib import ANSIBLE_PLAYBOOK, REPO, add_fleet_options, add_write_option, ansible_env, collections_dir, write_section
from fleet_flip_bench import BASELINE, PLAYBOOKS

sys.path.insert(0, str(REPO / "tests" / "lab"))

from fleetlab.testing import RunningLab  # noqa: E402

SECTION = "## Time to mitigation: disable_stapling.yml against the runbook's playbook"
FAULTY_CA = "alpha"
FAST_SECONDS = 0.1  # the bar for a handshake that is "answered" again
HANDSHAKE_TIMEOUT = 15.0  # for the first handshake: over mod_ssl's default responder timeout (10 s), so a stall shows
PROBE_PAUSE = 0.5  # between two handshakes of one vhost: the resolution, and the load the probes put on 2 cores
IN_FLIGHT = 3  # handshakes under way at once with one vhost: 3 x 0.5 s outlasts STALL_CUTOFF, so a stall leaves no gap
STALL_CUTOFF = 1.0  # when every handshake but the first gives up: far over the 100 ms bar, far under a stall
SETTLE_SECONDS = 1.0  # after the playbook, before the last handshakes that show each vhost stays fast
CONFIRMING_HANDSHAKES = 3  # started with each vhost once the playbook has ended and settled
PLAYBOOK_TIMEOUT = 900
OUTAGE_SECONDS = 1.0  # a handshake this slow can only be a stall on the responder, not the machine's noise


@dataclass(frozen=True)
class Vhost:
    host: str
    layout: str
    port: int
    server_name: str


@dataclass(frozen=True)
class Handshake:
    started: float  # seconds since the fault start
    seconds: float
    completed: bool

    @property
    def fast(self) -> bool:
        return self.completed and self.seconds < FAST_SECONDS


def affected_vhosts(state: dict) -> list[Vhost]:
    """The vhosts a hanging alpha responder can stall: alpha's, except the certificate without an OCSP URL."""
    return [Vhost(host["name"], host.get("layout", "?"), host["port"], vhost["server_name"])
            for host in state["hosts"] for vhost in host["vhosts"]
            if vhost["ca"] == FAULTY_CA and vhost["kind"] != "no-ocsp-url"]


def handshake(vhost: Vhost, timeout: float) -> tuple[float, bool]:
    """Seconds for one handshake that asks for a staple (no verification), and whether it completed in time.

    pyOpenSSL rather than the ssl module: the ssl module cannot ask for a staple, and without that request
    mod_ssl never waits for the responder. A socket with a timeout is non-blocking to pyOpenSSL, hence the
    select loop, which also enforces the overall deadline."""
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_verify(SSL.VERIFY_NONE, lambda *_args: True)
    context.set_ocsp_client_callback(lambda *_args: True)  # whatever came back (or nothing) is fine here
    started = time.monotonic()
    deadline = started + timeout
    try:
        with socket.create_connection(("127.0.0.1", vhost.port), timeout=timeout) as raw:
            connection = SSL.Connection(context, raw)
            connection.set_tlsext_host_name(vhost.server_name.encode())
            connection.request_ocsp()
            connection.set_connect_state()
            completed = _finish_handshake(connection, raw, deadline)
            return time.monotonic() - started, completed
    except (OSError, SSL.Error):
        return time.monotonic() - started, False


def _finish_handshake(connection: SSL.Connection, raw: socket.socket, deadline: float) -> bool:
    while True:
        try:
            connection.do_handshake()
            return True
        except SSL.WantReadError:
            readable, writable = [raw], []
        except SSL.WantWriteError:
            readable, writable = [], [raw]
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not any(select.select(readable, writable, [], remaining)[:2]):
            return False


def probe_until(vhost: Vhost, fault_started: float, stop: threading.Event, handshakes: ThreadPoolExecutor) -> list[Handshake]:
    """Handshakes with one vhost, a new one every PROBE_PAUSE while fewer than IN_FLIGHT are under way, until a
    few have been started after ``stop`` was set; sorted by when they started.

    Overlapping, so that a handshake stuck on an old worker until the responder timeout does not hide that new
    clients are served fast as soon as the reload is done. Only the first one may take HANDSHAKE_TIMEOUT, to
    measure how long a stall lasts; the others give up after STALL_CUTOFF (it is not fast, that is all they need
    to know), so that the probes do not pile up on a stalled server and fill every slot."""
    seen: list[Handshake] = []
    slots = threading.Semaphore(IN_FLIGHT)

    def one(timeout: float) -> None:
        try:
            started = time.monotonic() - fault_started
            seconds, completed = handshake(vhost, timeout)
            seen.append(Handshake(started, seconds, completed))
        finally:
            slots.release()

    launched = []
    confirming = 0
    while confirming < CONFIRMING_HANDSHAKES:
        slots.acquire()
        if stop.is_set():
            confirming += 1
        launched.append(handshakes.submit(one, STALL_CUTOFF if launched else HANDSHAKE_TIMEOUT))
        time.sleep(PROBE_PAUSE)
    for future in launched:
        future.result()
    return sorted(seen, key=lambda h: h.started)


def mitigated_at(seen: list[Handshake]) -> float | None:
    """When the final run of fast handshakes began (seconds since the fault start); None if the last was slow.

    A vhost may look fast before the playbook reaches it (mod_ssl caches a failed fetch for a while); it only
    counts as mitigated from the point after which it never stalled again, up to the end of probing."""
    if not seen or not seen[-1].fast:
        return None
    first_fast = len(seen) - 1
    while first_fast > 0 and seen[first_fast - 1].fast:
        first_fast -= 1
    return seen[first_fast].started


def run_playbook(lab: RunningLab, env: dict, scratch: Path, label: str, forks: int) -> tuple[subprocess.Popen, Path]:
    playbook, extra_vars = PLAYBOOKS[label]
    vars_file = scratch / "vars.json"
    vars_file.write_text(json.dumps(dict(extra_vars, stapling_report_dir=str(scratch / "reports"))))
    log_path = scratch / f"{label.replace(' ', '-')}.log"
    # The output goes to a file: a pipe nobody reads while the probes run could fill up and stall the playbook.
    with log_path.open("w") as log:
        process = subprocess.Popen([str(ANSIBLE_PLAYBOOK), "-i", str(lab.inventory), str(playbook), "-e", f"@{vars_file}"],
                                   env=dict(env, ANSIBLE_FORKS=str(forks)), stdout=log, stderr=subprocess.STDOUT)
    return process, log_path


def run_round(lab: RunningLab, env: dict, scratch: Path, label: str, forks: int) -> dict:
    for host in lab.state["hosts"]:
        lab.reset_host(host["name"])
    vhosts = affected_vhosts(lab.state)
    stop = threading.Event()
    lab.cli("fault", FAULTY_CA, "hang")  # returns once the responder says the mode is in effect
    fault_started = time.monotonic()
    process, log_path = run_playbook(lab, env, scratch, label, forks)
    try:
        # Threads for every vhost at once: a stalled handshake holds its thread for seconds, and a smaller pool
        # would reach some vhosts only after the playbook did, hiding their outage.
        with ThreadPoolExecutor(max_workers=len(vhosts)) as probers, \
                ThreadPoolExecutor(max_workers=len(vhosts) * IN_FLIGHT) as handshakes:
            futures = {vhost: probers.submit(probe_until, vhost, fault_started, stop, handshakes) for vhost in vhosts}
            try:
                returncode = process.wait(timeout=PLAYBOOK_TIMEOUT)
                playbook_seconds = time.monotonic() - fault_started
                time.sleep(SETTLE_SECONDS)
            finally:
                stop.set()  # before leaving the pools, which wait for the probers, also when something went wrong
            seen = {vhost: future.result() for vhost, future in futures.items()}
    finally:
        if process.poll() is None:  # timed out or interrupted
            process.kill()
            process.wait()
        lab.cli("fault", FAULTY_CA, "ok")
    if returncode != 0:
        raise SystemExit(f"{label} failed ({returncode}):\n{log_path.read_text()[-4000:]}")
    recovered = {vhost: mitigated_at(handshakes) for vhost, handshakes in seen.items()}
    every_handshake = [h for handshakes in seen.values() for h in handshakes]
    never = [v for v, at in recovered.items() if at is None]
    last = max(recovered, key=lambda v: recovered[v]) if not never else never[0]
    times = sorted(at for at in recovered.values() if at is not None)
    return {
        "mitigation": None if never else recovered[last],
        "half_mitigated": times[(len(vhosts) - 1) // 2] if len(times) * 2 >= len(vhosts) else None,
        "last_vhost": last,
        "not_mitigated": never,
        "playbook_seconds": playbook_seconds,
        "longest_handshake": max(h.seconds for h in every_handshake),
        "longest_given_up": any(not h.completed and h.seconds >= HANDSHAKE_TIMEOUT for h in every_handshake),
        "stalled_handshakes": sum(h.seconds >= OUTAGE_SECONDS or not h.completed for h in every_handshake),
        "handshakes": len(every_handshake),
        "vhosts": len(vhosts),
    }


def _seconds(value: float | None) -> str:
    return "not reached" if value is None else f"{value:.1f} s"


def _longest(figures: dict) -> str:
    if figures["longest_given_up"]:
        return f"over {HANDSHAKE_TIMEOUT:.0f} s (given up)"
    return f"{figures['longest_handshake']:.1f} s"


def render(results: dict, hosts: int, forks: int, repeat: int) -> str:
    base = results[BASELINE]["mitigation"]
    lines = [SECTION, "",
             f"`.venv/bin/python bench/mitigation_bench.py --hosts {hosts} --forks {forks} --repeat {repeat}` on "
             f"{os.cpu_count()} cores: {hosts} lab hosts, {results[BASELINE]['vhosts']} vhosts of CA alpha with an "
             "OCSP URL. Each round empties every stapling cache, makes alpha's responder hang and starts the playbook "
             f"at once; every affected vhost gets a handshake asking for a staple (as browsers do) every {PROBE_PAUSE} s, "
             f"up to {IN_FLIGHT} at once. Time to mitigation: from the fault start to the last vhost's first handshake "
             f"under {FAST_SECONDS * 1000:.0f} ms after which every one started was as fast, the last "
             f"{CONFIRMING_HANDSHAKES} started {SETTLE_SECONDS:.0f} s after the playbook ended. Best of the rounds.",
             "", "| playbook | time to mitigation | against the naive one | playbook wall time | longest stalled handshake |",
             "|---|---|---|---|---|"]
    for label, figures in results.items():
        ratio = "n/a" if base is None or figures["mitigation"] is None else f"{figures['mitigation'] / base:.2f}x"
        lines.append(f"| {label} | {_seconds(figures['mitigation'])} | {ratio} | {figures['playbook_seconds']:.1f} s | "
                     f"{_longest(figures)} |")
    lines += ["", f"Last vhost to recover, and the handshakes that stalled (took {OUTAGE_SECONDS:.0f} s or were given up) "
              f"out of all the probes made; only each vhost's first handshake may take up to {HANDSHAKE_TIMEOUT:.0f} s, "
              f"the others give up after {STALL_CUTOFF:.0f} s:", ""]
    for label, figures in results.items():
        last = figures["last_vhost"]
        lines.append(f"- {label}: {last.server_name} ({last.layout} layout); half the vhosts by "
                     f"{_seconds(figures['half_mitigated'])}; {figures['stalled_handshakes']} of {figures['handshakes']} "
                     "handshakes stalled")
    lines += ["", "Why vhosts can recover before their reload: mod_ssl fetches the response while the handshake waits, up "
              "to SSLStaplingResponderTimeout (10 s by default, 3 s on the cpanel layout), and where "
              "SSLStaplingFakeTryLater is on (the default) it then caches the failure for a while: one client alone "
              "stalls once, and clients arriving every half second, as here, queue behind the fetches for longer. The "
              "cpanel layout caches nothing on a failure (SSLStaplingFakeTryLater off): there every handshake asking for "
              "a staple waits until a reload switches stapling off."]
    return "\n".join(lines) + "\n"


def proven(results: dict) -> list[str]:
    """What is wrong with the figures: no mitigation, or no outage to mitigate."""
    problems = []
    for label, figures in results.items():
        if figures["mitigation"] is None:
            names = ", ".join(v.server_name for v in figures["not_mitigated"])
            problems.append(f"{label}: still slow when probing ended: {names}")
        if figures["longest_handshake"] < OUTAGE_SECONDS:
            problems.append(f"{label}: no handshake stalled ({figures['longest_handshake']:.3f} s at most)")
    return problems


def better(figures: dict, best: dict | None) -> bool:
    if best is None:
        return True
    if figures["mitigation"] is None:
        return False
    return best["mitigation"] is None or figures["mitigation"] < best["mitigation"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_fleet_options(parser)
    add_write_option(parser)
    options = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="mitigation-bench-"))
    results: dict[str, dict] = {}
    try:
        lab = RunningLab(options.hosts, prefix="mitigation-bench-lab-")
        try:
            env = ansible_env(collections_dir(scratch), lab.state)
            for round_number in range(1, options.repeat + 1):
                for label in PLAYBOOKS:  # taking turns, so that the machine's noise weighs on both alike
                    figures = run_round(lab, env, scratch, label, options.forks)
                    # each round on stderr, so that the spread behind "best of" can be seen
                    print(f"round {round_number}, {label}: mitigation {_seconds(figures['mitigation'])}, "
                          f"playbook {figures['playbook_seconds']:.1f} s", file=sys.stderr)
                    if better(figures, results.get(label)):
                        results[label] = figures
        finally:
            lab.stop()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    text = render(results, options.hosts, options.forks, options.repeat)
    print(text)
    problems = proven(results)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    if options.write:
        write_section(options.write, SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
