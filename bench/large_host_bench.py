#!/usr/bin/env python
"""The modules on a large host: a cPanel-style config with thousands of SSL vhosts, each its own certificate.

For each size in ``--sizes`` the bench generates a cPanel-style ServerRoot (the lab's cpanel layout: one generated
httpd.conf with every vhost inline, each vhost serving its own leaf certificate, stapling on at server scope)
and starts Debian's apache2 on it, on a free loopback port. It then takes turns, ``--repeat`` rounds, at:

- the baselines: a bare ``ctl -t`` (parses everything, loads no certificate) and a graceful reload (loads every
  certificate), timed until the master logs that it resumed normal operations with the new configuration;
- Ansible's start-up: a one-task playbook running ``ansible.builtin.ping`` on localhost (local connection, the
  system ``/usr/bin/python3`` as a managed host has it, pyOpenSSL hidden as on a minimal host);
- the same one-task playbook running ``apache_stapling_info``, ``apache_stapling`` (state=disabled) in check mode,
  first with an empty state directory (every certificate read, as on a host's first run) then again (what the
  certificates say kept from the run before), and ``apache_stapling`` for real (plan, write, ``ctl -t``; no
  reload), each net of the ping playbook. The config is put back after every real run.

The interpreter Ansible runs the modules with is a small wrapper around the system Python that records the
module process's own peak RSS and wall time, compared with the Apache master's VmRSS. Usage:

    .venv/bin/python bench/large_host_bench.py [--sizes 500,2000,5000] [--repeat 3] [--write [docs/benchmarks.md]]
    .venv/bin/python bench/large_host_bench.py --sizes 50 --repeat 1      # smoke run, under a minute
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from benchlib import ANSIBLE_PLAYBOOK, REPO, add_write_option, ansible_env, collections_dir, publish

sys.path.insert(0, str(REPO / "tests" / "lab"))

from fleetlab import apache  # noqa: E402
from fleetlab.layouts import HostPlan, Vhost, render, write_tree  # noqa: E402
from fleetlab.sshd import HIDDEN_PYOPENSSL, SYSTEM_PYTHON, system_python_has_pyopenssl  # noqa: E402
from fleetlab.testing import free_port_block  # noqa: E402

SECTION = "## Large host: the modules on a cPanel-style config with thousands of SSL vhosts"
# Targets of issue 12, as ratios to the baselines measured in the same run.
CHECK_TARGET = 3.0  # check mode against a bare ctl -t
REAL_TARGET = 0.25  # a real run against a graceful reload
RESUMED = "resuming normal operations"
START_TIMEOUT = 900.0  # seconds; the master loads every certificate twice at start-up
RELOAD_TIMEOUT = 900.0

# The interpreter Ansible is told to use: the system Python, running the module in the same process and noting, as
# the process ends, its own peak RSS (children such as ctl -t are not counted) and how long it ran.
RSS_WRAPPER = '''#!{python}
import atexit, json, resource, runpy, sys, time
_started = time.monotonic()


def _record():
    with open({log!r}, "a") as stream:
        stream.write(json.dumps({{"maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                                  "seconds": time.monotonic() - _started}}) + "\\n")


atexit.register(_record)
del sys.argv[0]
if sys.argv and sys.argv[0] not in ("", "-"):
    runpy.run_path(sys.argv[0], run_name="__main__")
else:  # pipelining: the module comes on stdin
    exec(compile(sys.stdin.read(), "<stdin>", "exec"), {{"__name__": "__main__"}})
'''


# ---------------------------------------------------------------- the host


class Pki:
    """One issuer with an OCSP URL nobody answers and ``count`` leaves, all on one key so that generation is fast.
    RSA throughout, as the certificates cPanel's AutoSSL installs are."""

    def __init__(self, directory: Path, count: int, ocsp_url: str):
        directory.mkdir(parents=True)
        self.key_file = directory / "leaf.key"
        self.leaves: list[Path] = []
        now = datetime.datetime.now(datetime.timezone.utc)
        issuer_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        issuer_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Large Host Bench CA")])
        issuer = (x509.CertificateBuilder().subject_name(issuer_name).issuer_name(issuer_name)
                  .public_key(issuer_key.public_key()).serial_number(x509.random_serial_number())
                  .not_valid_before(now - datetime.timedelta(days=2)).not_valid_after(now + datetime.timedelta(days=365))
                  .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                  .add_extension(x509.SubjectKeyIdentifier.from_public_key(issuer_key.public_key()), critical=False)
                  .sign(issuer_key, hashes.SHA256()))
        issuer_pem = issuer.public_bytes(serialization.Encoding.PEM)
        leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.key_file.write_bytes(leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
        self.key_file.chmod(0o600)
        aia = x509.AuthorityInformationAccess([x509.AccessDescription(AuthorityInformationAccessOID.OCSP,
                                                                      x509.UniformResourceIdentifier(ocsp_url))])
        authority_key_id = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key())
        leaves = directory / "leaves"
        leaves.mkdir()
        for number in range(count):
            name = server_name(number)
            leaf = (x509.CertificateBuilder()
                    .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])).issuer_name(issuer_name)
                    .public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
                    .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=90))
                    .add_extension(x509.SubjectAlternativeName([x509.DNSName(name), x509.DNSName("www." + name)]),
                                   critical=False)
                    .add_extension(aia, critical=False).add_extension(authority_key_id, critical=False)
                    .sign(issuer_key, hashes.SHA256()))
            path = leaves / f"{name}.pem"
            path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM) + issuer_pem)  # leaf and chain, as cPanel
            self.leaves.append(path)


def server_name(number: int) -> str:
    return f"site{number}.large.test"


def host_plan(scratch: Path, size: int, port: int, pki: Pki) -> HostPlan:
    vhosts = [Vhost(server_name=server_name(n), alias="www." + server_name(n), ca="bench", kind="normal",
                    cert_file=pki.leaves[n], key_file=pki.key_file) for n in range(size)]
    return HostPlan(name=f"large{size}", layout="cpanel", port=port, server_root=scratch / f"host-{size}",
                    vhosts=vhosts, modules_dir=apache.find_modules_dir(),
                    run_as="www-data:www-data" if os.geteuid() == 0 else None, stapling=True)


def master_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def resumed_count(host: HostPlan) -> int:
    try:
        return host.error_log.read_text(errors="replace").count(RESUMED)
    except OSError:
        return 0


# ---------------------------------------------------------------- timings


def timed(command: list[str], env: dict | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{command[0]} failed ({done.returncode}):\n{done.stdout[-4000:]}{done.stderr[-2000:]}")
    return elapsed


def graceful_reload(binary: Path, host: HostPlan) -> float:
    """Seconds from ``-k graceful`` until the master says it runs the new configuration and the port answers."""
    before = resumed_count(host)
    started = time.perf_counter()
    subprocess.run([*apache.ctl_command(binary, host), "-k", "graceful"], capture_output=True, check=True, timeout=600)
    deadline = time.monotonic() + RELOAD_TIMEOUT
    while resumed_count(host) <= before or not apache.port_answers(host.port):
        if time.monotonic() > deadline:
            raise SystemExit(f"{host.name}: the graceful reload did not finish:\n{apache.tail(host.error_log)}")
        time.sleep(0.02)
    return time.perf_counter() - started


class Ansible:
    """One-task playbooks on localhost through the wrapper interpreter, against one host's config."""

    def __init__(self, scratch: Path, env: dict):
        self.scratch = scratch
        self.env = env
        self.rss_log = scratch / "module-rss.jsonl"
        wrapper = scratch / "python3-rss"
        wrapper.write_text(RSS_WRAPPER.format(python=SYSTEM_PYTHON, log=str(self.rss_log)))
        wrapper.chmod(0o755)
        self.inventory = scratch / "inventory.json"
        self.inventory.write_text(json.dumps({"all": {"hosts": {"localhost": {
            "ansible_connection": "local", "ansible_python_interpreter": str(wrapper)}}}}))

    def run(self, label: str, module: str, args: dict, check: bool = False) -> tuple[float, dict]:
        """Wall seconds of ansible-playbook, and the module process's own figures from the wrapper."""
        playbook = self.scratch / f"{label}.yml"
        task = {"name": label, module: args, "check_mode": check}
        playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": [task]}]))
        self.rss_log.unlink(missing_ok=True)
        seconds = timed([str(ANSIBLE_PLAYBOOK), "-i", str(self.inventory), str(playbook)], env=self.env)
        records = [json.loads(line) for line in self.rss_log.read_text().splitlines()]
        return seconds, {"maxrss_kib": max(r["maxrss_kib"] for r in records),
                         "seconds": sum(r["seconds"] for r in records)}


def instance_args(binary: Path, host: HostPlan) -> dict:
    return {"ctl": apache.ctl_string(binary, host), "config_file": str(host.config_file),
            "server_root": str(host.server_root)}


def measure_size(scratch: Path, ansible: Ansible, binary: Path, pki: Pki, size: int, repeat: int) -> dict:
    base_port = free_port_block(2)
    host = host_plan(scratch, size, base_port, pki)
    tree = render(host)
    write_tree(host, tree)
    pid = None
    best: dict[str, float] = {}
    module_figures: dict[str, dict] = {}

    def keep(label: str, seconds: float, figures: dict | None = None) -> None:
        best[label] = min(seconds, best.get(label, seconds))
        if figures:
            known = module_figures.setdefault(label, {"maxrss_kib": 0, "seconds": figures["seconds"]})
            known["maxrss_kib"] = max(known["maxrss_kib"], figures["maxrss_kib"])
            known["seconds"] = min(known["seconds"], figures["seconds"])

    try:
        started = time.perf_counter()
        pid = apache.start(binary, host, timeout=START_TIMEOUT)
        start_seconds = time.perf_counter() - started
        args = instance_args(binary, host)
        # the module keeps what the certificates say between runs here (certificate-facts.json)
        state_dir = scratch / f"state-{size}"
        changing = dict(args, state="disabled", state_dir=str(state_dir))
        for _round in range(repeat):  # taking turns, so that the machine's noise weighs on all alike
            keep("ctl -t", timed([*apache.ctl_command(binary, host), "-t"]))
            keep("graceful reload", graceful_reload(binary, host))
            keep("ping", *ansible.run("ping", "ansible.builtin.ping", {}))
            # the module's fixed cost: a call that returns as soon as its arguments are read
            keep(STARTUP, *ansible.run("startup", "fleet.stapling.apache_stapling", {"discard_backups": []}))
            keep("apache_stapling_info", *ansible.run("info", "fleet.stapling.apache_stapling_info", args))
            # a first run on the host: every certificate read
            shutil.rmtree(state_dir, ignore_errors=True)
            keep("apache_stapling check mode, first run",
                 *ansible.run("check", "fleet.stapling.apache_stapling", changing, check=True))
            keep("apache_stapling check mode",
                 *ansible.run("check", "fleet.stapling.apache_stapling", changing, check=True))
            keep("apache_stapling real run",
                 *ansible.run("real", "fleet.stapling.apache_stapling", changing))
            write_tree(host, tree)  # stapling back on, for the next round
        master = apache.current_master(pid, host)
        master_kib = master_rss_kib(master) if master else 0
    finally:
        apache.stop(pid, host, timeout=120)
        shutil.rmtree(host.server_root, ignore_errors=True)
    return {"size": size, "start": start_seconds, "best": best, "module": module_figures, "master_kib": master_kib}


# ---------------------------------------------------------------- report

STARTUP = "apache_stapling start-up"
MODULES = ("apache_stapling_info", "apache_stapling check mode, first run", "apache_stapling check mode",
           "apache_stapling real run")

# The same bench before the profile's fixes (on a98d94e, same machine, --repeat 2), and what the profile showed.
BEFORE = [
    "Before the fixes (a98d94e, `--repeat 2`), net of start-up: check mode 0.97 s / 2.92 s / 8.65 s at 500 / 2000 / "
    "5000 vhosts (20x / 23x / 34x `ctl -t`), real run 1.65 s / 3.54 s / 7.94 s (1.70x / 1.16x / 1.31x a graceful "
    "reload), `apache_stapling_info` 1.57 s / 3.09 s / 6.53 s, module peak RSS 44 / 73 / 143 MiB.",
    "",
    "What cProfile showed (the modules run in-process on the 5,000-vhost tree) and what changed:",
    "",
    "- Python's cycle collector: each read of the tree allocates a few hundred thousand objects, and every few hundred "
    "of them made the collector scan the whole heap, earlier trees included; the second read took four times the "
    "first. Reading the tree and building the facts now pause it (`apache_config.cycle_collection_paused`).",
    "- The tree was read three times per run (plan, check of the planned tree, the instance description); the tree "
    "as on disk is now read once per run (`ApacheHost.parse`) and read again only after a write.",
    "- Word splitting went one character at a time (the top function by own time): a regular expression now, and "
    "`str.split` for lines without quotes. Each vhost's settings were found by walking its section ten times: an "
    "index per section now. `IncludeOptional` of each vhost's missing userdata directory ran a glob: a stat now.",
    "- `ctl -M` read the whole config just to list the compiled-in modules (more than `ctl -t` at 5,000 vhosts): "
    "`ctl -l` lists them without reading it; `-M` stays the fallback.",
    "- Certificates: with the system Python's cryptography 38, every leaf's issuer check loaded the issuer's public "
    "key again (0.1 ms each) and every file's copy of the intermediate was parsed again; a `CertificateReader` "
    "now does both once per distinct CA certificate. A real run no longer reads every certificate a second time "
    "after the write.",
    "- Choosing the handshake targets rebuilt a set per vhost (quadratic, 0.8 s at 5,000).",
    "- The size of the result: `apache_stapling` returned every vhost's facts (7.8 MB at 5,000 vhosts), which "
    "Ansible's `exit_json` walked for no_log values and encoded (about 1 s) and the controller decoded again. It "
    "now returns what each vhost does after the change (the certificates' facts are `apache_stapling_info`'s), "
    "and a diff only with `--diff`. Most of what remains in check mode is two reads of the tree (the plan and "
    "its check, about 0.3 s each at 5,000 vhosts) and the certificates' facts (about 0.9 s), which the "
    "Must-Staple guard and the selection by OCSP host need.",
    "",
    "After those (f4c4fd9, `--repeat 2`), at 5,000 vhosts: check mode 3.12 s (12.8x `ctl -t`), real run 3.98 s (0.56x "
    "a graceful reload), module peak RSS 167 MiB. A second profile, of the module process with the system Python:",
    "",
    "- The cycle collector still took about half the process's CPU time: between the paused reads it ran over the "
    "whole heap while the result was built and encoded, and once more while Python shut down. A module process "
    "now switches it off for good and freezes the heap at exit (`short_lived_process`): 1.79 s of CPU became "
    "0.83 s at 5,000 vhosts.",
    "- The certificates' facts: each run read and described every certificate file again. They are now kept in "
    "the module's state directory (`certificate-facts.json`, keyed by each file's inode, size and times) and only "
    "new or changed files are read; the first run on a host reads them all (the \"first run\" column).",
    "- A real run read the tree a third time after writing it; the tree its plan was checked on is the one now on "
    "disk (same bytes, under the lock), and is kept instead.",
    "- Each vhost in the result carried nine keys; three (`id`, `stapling`, `stapling_engine`) are what the role "
    "uses, and each string fewer is one Ansible walks and encodes.",
    "",
    "After those (ca9575d, `--repeat 3`), at 5,000 vhosts: check mode 1.08 s net (4.9x `ctl -t`), real run 1.41 s "
    "(0.23x a graceful reload). A third profile of the check-mode process:",
    "",
    "- The two reads of the tree (the plan, then its check on the planned contents) were half of it, and the check "
    "read every file from disk and split every line again, though the plan changed two files. The check now takes "
    "the files the plan leaves alone from the first read, their lines already split (`apache_config.statements`), "
    "and a file is decoded at once rather than line by line.",
    "- The layout and the Include targets were worked out five times per run (10,000 Includes each time), the "
    "whole httpd.conf was joined to look for cPanel's banner in its first 40 lines, and each of a vhost's lookups "
    "copied its answer: once per tree now, the first lines only, and no copies.",
    "",
    "The check-mode process on the 5,000-vhost tree, by hand with `time` (user and system CPU, best of several "
    "runs on a quiet machine): 0.89 s before, 0.77 s after the first change, 0.73 s after both.",
    "",
    "Through Ansible a module run costs more than its process (in the table below, 0.97 s net against 0.76 s of "
    "process at 5,000 vhosts): a run of `apache_stapling` that stops at once costs 0.19 s more than `ping` "
    "(AnsiballZ packing about 30 module_utils, and their import on the host), which at 500 vhosts is check mode's "
    "whole net time. Check mode at 3x `ctl -t` would need the planned tree's check to re-interpret only the files "
    "that changed, and a smaller start-up; neither is done.",
    "",
    "After those (1d608bb, `--repeat 3`): check mode 5.5x / 5.5x / 4.9x `ctl -t` at 500 / 2000 / 5000 vhosts, real "
    "run 0.53x / 0.33x / 0.25x a graceful reload, module peak RSS 43 / 74 / 135 MiB. A fourth look, at what a run "
    "costs besides reading the tree:",
    "",
    "- Every run loaded cryptography's x509 code, and pyOpenSSL with the OCSP client (together about 55 ms and "
    "7 MiB), though a check-mode run whose certificates' facts all come from the cache reads no certificate, and "
    "only a reload shakes hands. Each is now loaded when it is needed (`cryptography_floor` checks the host's "
    "cryptography without them). The check-mode process at 500 vhosts, by hand: 0.22 s to 0.18 s of CPU, 41 to "
    "34 MiB.",
    "- The result: at 5,000 vhosts check mode returned 1.5 MB. A stand-in module returning that same result took "
    "0.38 s longer through Ansible than one returning two keys (about 0.08 s of it the module's own `exit_json`, "
    "the rest on the controller); the 5,000 dicts of `stapling.vhosts` were 0.23 s of it, the lists of names "
    "little. `apache_stapling` now returns `vhosts_stapling`, the names of the vhosts that staple, instead of "
    "those dicts.",
    "- The module's fixed cost is now measured in every round (the start-up column): a call that returns as soon "
    "as its arguments are read. Every run pays it, and at 500 vhosts it alone is more than check mode's budget "
    "(3x `ctl -t`) and a real run's (0.25x a graceful reload), with a peak RSS (Python and Ansible's module code, "
    "mostly) about the master's.",
    "",
]


def net(figures: dict, label: str) -> float:
    return figures["best"][label] - figures["best"]["ping"]


def render_report(results: list[dict], repeat: int, sizes: str) -> str:
    lines = [SECTION, "",
             f"`.venv/bin/python bench/large_host_bench.py --sizes {sizes} --repeat {repeat}` on {os.cpu_count()} "
             "cores: Debian's apache2 on a generated cPanel-style httpd.conf (every vhost inline, each with its own "
             "certificate, stapling on at server scope), the modules run by a one-task playbook on localhost with "
             "the system Python (pyOpenSSL hidden). Best of the rounds; module times are net of the same playbook "
             "running `ping` (Ansible's start-up); \"process\" is the module process alone. Peak RSS is the module "
             "process's own (the largest over the rounds); the master's is its VmRSS after the reloads. Targets: "
             f"check mode at most {CHECK_TARGET:g}x a bare `ctl -t`, a real run (plan, write, `ctl -t`) at most "
             f"{REAL_TARGET:g}x a graceful reload, peak RSS at most the master's, growth linear.", "", *BEFORE,
             "Now:", "",
             "| SSL vhosts | ctl -t | graceful reload | ping playbook | module start-up (process, RSS) | info (process) | "
             "check mode, first run | check mode (process) | against ctl -t | real run (process) | against reload | "
             "module peak RSS | master RSS |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for figures in results:
        best, module = figures["best"], figures["module"]
        check, real = net(figures, "apache_stapling check mode"), net(figures, "apache_stapling real run")
        first = net(figures, "apache_stapling check mode, first run")
        peak = max(module[label]["maxrss_kib"] for label in MODULES)
        lines.append(
            f"| {figures['size']} | {best['ctl -t']:.2f} s | {best['graceful reload']:.2f} s | {best['ping']:.2f} s | "
            f"{net(figures, STARTUP):.2f} s ({module[STARTUP]['seconds']:.2f} s, "
            f"{module[STARTUP]['maxrss_kib'] / 1024:.0f} MiB) | "
            f"{net(figures, 'apache_stapling_info'):.2f} s ({module['apache_stapling_info']['seconds']:.2f} s) | "
            f"{first:.2f} s ({first / best['ctl -t']:.1f}x) | "
            f"{check:.2f} s ({module['apache_stapling check mode']['seconds']:.2f} s) | "
            f"{check / best['ctl -t']:.1f}x | {real:.2f} s ({module['apache_stapling real run']['seconds']:.2f} s) | "
            f"{real / best['graceful reload']:.2f}x | {peak / 1024:.0f} MiB | {figures['master_kib'] / 1024:.0f} MiB |")
    lines += ["", *growth_lines(results), "", *target_lines(results), "", *floor_lines(results)]
    return "\n".join(lines) + "\n"


def growth_lines(results: list[dict]) -> list[str]:
    """Milliseconds per vhost at each size: linear growth keeps them level."""
    if len(results) < 2:
        return ["Growth: one size only; run several sizes to see it."]
    found = ["Growth, milliseconds per SSL vhost at each size (level numbers mean linear growth):", ""]
    for label in ("ctl -t", "graceful reload", *MODULES):
        per_vhost = []
        for figures in results:
            seconds = figures["best"][label] if label not in MODULES else net(figures, label)
            per_vhost.append(f"{figures['size']}: {1000 * seconds / figures['size']:.2f}")
        found.append(f"- {label}: " + ", ".join(per_vhost))
    per_vhost = [f"{figures['size']}: {max(figures['module'][m]['maxrss_kib'] for m in MODULES) / figures['size']:.1f}"
                 for figures in results]
    found.append("- module peak RSS, KiB per vhost: " + ", ".join(per_vhost))
    return found


def target_lines(results: list[dict]) -> list[str]:
    largest = results[-1]
    best = largest["best"]
    check = net(largest, "apache_stapling check mode") / best["ctl -t"]
    real = net(largest, "apache_stapling real run") / best["graceful reload"]
    peak = max(largest["module"][m]["maxrss_kib"] for m in MODULES)
    first = net(largest, "apache_stapling check mode, first run") / best["ctl -t"]
    verdicts = [
        ("check mode", check <= CHECK_TARGET, f"{check:.1f}x ctl -t (target {CHECK_TARGET:g}x)"),
        ("check mode, first run on the host", first <= CHECK_TARGET,
         f"{first:.1f}x ctl -t (every certificate read)"),
        ("real run", real <= REAL_TARGET, f"{real:.2f}x a graceful reload (target {REAL_TARGET:g}x)"),
        ("peak RSS", peak <= largest["master_kib"],
         f"{peak / 1024:.0f} MiB against the master's {largest['master_kib'] / 1024:.0f} MiB"),
    ]
    return [f"At {largest['size']} vhosts:", ""] + [
        f"- {what}: {'met' if met else 'MISSED'}, {detail}" for what, met, detail in verdicts]


def floor_lines(results: list[dict]) -> list[str]:
    """How much of each target the module's fixed cost (start-up, nothing read) takes up at each size."""
    found = ["What the module's fixed cost (a call that returns once its arguments are read: Python, Ansible's "
             "module code and ours, net of `ping`) takes of each target's budget:", ""]
    for figures in results:
        best, startup = figures["best"], net(figures, STARTUP)
        check_budget, real_budget = CHECK_TARGET * best["ctl -t"], REAL_TARGET * best["graceful reload"]
        found.append(f"- {figures['size']} vhosts: {startup:.2f} s of check mode's {check_budget:.2f} s "
                     f"({100 * startup / check_budget:.0f}%), of a real run's {real_budget:.2f} s "
                     f"({100 * startup / real_budget:.0f}%); its peak RSS "
                     f"{figures['module'][STARTUP]['maxrss_kib'] / 1024:.0f} MiB against the master's "
                     f"{figures['master_kib'] / 1024:.0f} MiB")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="500,2000,5000", help="comma-separated numbers of SSL vhosts")
    parser.add_argument("--repeat", type=int, default=3)
    add_write_option(parser)
    options = parser.parse_args()
    sizes = sorted(int(size) for size in options.sizes.split(","))
    binary = apache.find_binary()
    scratch = Path(tempfile.mkdtemp(prefix="large-host-bench-"))
    scratch.chmod(0o755)  # Apache's children run as www-data when the bench runs as root
    try:
        hidden = scratch / "minimal-host-python"
        extra = {}
        if system_python_has_pyopenssl():
            (hidden / "OpenSSL").mkdir(parents=True)
            (hidden / "OpenSSL" / "__init__.py").write_text(HIDDEN_PYOPENSSL)
            extra["PYTHONPATH"] = str(hidden)
        ansible = Ansible(scratch, ansible_env(collections_dir(scratch), **extra))
        pki = Pki(scratch / "pki", max(sizes), f"http://127.0.0.1:{free_port_block(1)}/")
        results = [measure_size(scratch, ansible, binary, pki, size, options.repeat) for size in sizes]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    text = render_report(results, options.repeat, ",".join(str(size) for size in sizes))
    publish(text, SECTION, options.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
