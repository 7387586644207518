#!/usr/bin/env python
"""Handshake time while a CA's responder hangs: mod_ssl's stapling against mod_md's, on the lab.

Starts a two-host lab, switches web1 to mod_md with the stapling role (web2 keeps mod_ssl), lets the responders
answer, then makes CA alpha's responder hang and measures, on each host, the TLS handshake (``openssl s_client
-status``) of the alpha vhost: right after a graceful reload (mod_ssl's cache is then empty) and right after a
restart. Each time is reported against a baseline taken in the same phase on the same host: the handshake of the
vhost whose certificate has no OCSP URL, which never waits for a responder. Usage:

    .venv/bin/python bench/md_engine_bench.py [--samples 5] [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import ANSIBLE_PLAYBOOK, REPO, add_write_option, ansible_env, collections_dir, publish

sys.path.insert(0, str(REPO / "tests" / "lab"))

from fleetlab.testing import RunningLab  # noqa: E402

ROLE_PLAYBOOK = REPO / "tests" / "integration" / "pytest" / "playbooks" / "stapling_role.yml"
SECTION = "## Time to mitigation: mod_md against mod_ssl while a responder hangs"


def handshake(port: int, server_name: str) -> tuple[float, bool]:
    """Seconds for one s_client handshake with a staple request, and whether a good staple came back."""
    started = time.monotonic()
    done = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", server_name,
                           "-status"], input="", capture_output=True, text=True, timeout=60, check=False)
    return time.monotonic() - started, "Cert Status: good" in done.stdout


def phase(lab: RunningLab, name: str, samples: int) -> dict:
    host = lab.host(name)
    alpha = next(v["server_name"] for v in host["vhosts"] if v["ca"] == "alpha" and v["kind"] == "normal")
    baseline = next(v["server_name"] for v in host["vhosts"] if v["kind"] == "no-ocsp-url")
    first, first_good = handshake(host["port"], alpha)
    rest = [handshake(host["port"], alpha) for _sample in range(samples)]
    base = statistics.median(handshake(host["port"], baseline)[0] for _sample in range(samples))
    return {"first": first, "median": statistics.median(t for t, _good in rest), "baseline": base,
            "stapled_good": first_good and all(good for _t, good in rest)}


def reload(lab: RunningLab, name: str, how: str) -> None:
    command = shlex.split(lab.host(name)["reload"].replace("-k graceful", f"-k {how}"))
    subprocess.run(command, check=True, timeout=60)
    time.sleep(2)  # the new generation of workers takes over


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=5)
    add_write_option(parser)
    options = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="fleet-stapling-md-bench-"))
    lab = RunningLab(2, prefix="fleet-stapling-md-bench-lab-")
    try:
        env = ansible_env(collections_dir(scratch))
        subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", str(lab.inventory), "--limit", "web1", str(ROLE_PLAYBOOK),
                        "-e", json.dumps({"stapling_engine": "mod_md", "stapling_force": True})],
                       env=env, check=True, capture_output=True, timeout=600)
        time.sleep(3)  # mod_md's first fetch
        rows = []
        for label, action in (("responder answering", None), ("hanging, after a graceful reload", "graceful"),
                              ("hanging, after a restart", "restart")):
            if action:
                lab.cli("fault", "alpha", "hang")
            for name, engine in (("web1", "mod_md"), ("web2", "mod_ssl")):
                if action:
                    reload(lab, name, action)
                rows.append((label, engine, phase(lab, name, options.samples)))
        lab.cli("fault", "alpha", "ok")
    finally:
        lab.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    table = render(rows, options.samples)
    publish(table, SECTION, options.write)


def render(rows, samples: int) -> str:
    lines = [SECTION, "",
             f"`.venv/bin/python bench/md_engine_bench.py --samples {samples}` on {os.cpu_count()} cores. "
             "Handshake of CA alpha's vhost (`openssl s_client -status`), first one after the event and median "
             "of the next ones, against the median handshake of a vhost without OCSP URL on the same host "
             "(the baseline, which never waits for a responder).", "",
             "| phase | engine | first handshake | median | baseline | first / baseline | good staple |",
             "|---|---|---|---|---|---|---|"]
    for label, engine, figures in rows:
        lines.append(f"| {label} | {engine} | {figures['first']:.3f} s | {figures['median']:.3f} s | "
                     f"{figures['baseline']:.3f} s | {figures['first'] / figures['baseline']:.1f}x | "
                     f"{'yes' if figures['stapled_good'] else 'no'} |")
    md_fine = all(figures["stapled_good"] for _label, engine, figures in rows if engine == "mod_md")
    slowest_md = max(figures["first"] for _label, engine, figures in rows if engine == "mod_md")
    lines += ["", "Time to mitigation on the mod_md host: %s (slowest first handshake %.3f s)." % (
        "none needed, it kept stapling a good response throughout" if md_fine else "NOT zero: it lost its staple",
        slowest_md)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
