"""The lab fleet: two CAs with their OCSP responders and N Apache hosts, started, inspected and stopped.

Everything the lab starts is recorded in ``<lab dir>/lab.json`` with its pid, so that ``down`` stops exactly
those processes and nothing else on the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from fleetlab import apache, pki, responder
from fleetlab.apache import LabError
from fleetlab.inventory import write_inventory
from fleetlab.layouts import LAYOUTS, HostPlan, Vhost, render, write_tree
from fleetlab.processes import command_line
from fleetlab.sshd import SshDoor
from fleetlab.staple_check import check_staple

CAS = ("alpha", "beta")
DEFAULT_DIR = Path(os.environ.get("FLEET_LAB_DIR", "/tmp/fleet-stapling-lab"))
DEFAULT_BASE_PORT = int(os.environ.get("FLEET_LAB_BASE_PORT", "18400"))
DEFAULT_HOSTS = 3
HOST_PORT_OFFSET = 10
# The lab's sshd, through which Ansible reaches every lab host.
SSH_PORT_OFFSET = 2
# What the hosts' configs hold at start: stapling set up already, or never had it (no directive at all).
START_STATES = ("stapling", "never")
RESPONDER_SCRIPT = Path(responder.__file__).resolve()

# The two CAs' responders are named differently so that "the sites of one CA" can be told apart by host.
RESPONDER_HOSTNAMES = {"alpha": "127.0.0.1", "beta": "localhost"}

# (name prefix, CA, certificate kind, chain in a separate SSLCertificateChainFile)
COMMON_VHOSTS = (
    ("www-alpha", "alpha", "normal", False),
    ("www-beta", "beta", "normal", True),
    ("new-beta", "beta", "no-ocsp-url", False),
)
# One special certificate per host, round-robin, so the fleet holds every case the playbooks must handle.
SPECIAL_VHOSTS = (
    ("secure-alpha", "alpha", "must-staple", False),
    ("revoked-beta", "beta", "revoked", False),
    ("secure-beta", "beta", "must-staple", False),
)


class Lab:
    def __init__(self, directory: Path = DEFAULT_DIR):
        self.dir = directory.resolve()
        self.state_file = self.dir / "lab.json"
        self.pki_dir = self.dir / "pki"
        self.ssh = SshDoor(self.dir)

    # ------------------------------------------------------------ state

    def load_state(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise LabError(f"cannot read lab state {self.state_file}: {exc}") from exc

    def save_state(self, state: dict) -> None:
        temporary = self.state_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
        os.replace(temporary, self.state_file)

    def require_state(self) -> dict:
        state = self.load_state()
        if not state:
            raise LabError(f"no lab in {self.dir}; start one with: lab.py up")
        return state

    # ------------------------------------------------------------ up

    def up(self, hosts: int = DEFAULT_HOSTS, base_port: int = DEFAULT_BASE_PORT, reset: bool = False,
           start_state: str = "stapling") -> dict:
        """Start (or keep) the lab. ``start_state`` is what the hosts' configs hold before anyone touches them:
        "stapling" (set up already) or "never" (no stapling directive at all, as on most fresh servers)."""
        if start_state not in START_STATES:
            raise LabError(f"unknown start state {start_state!r}; expected one of {', '.join(START_STATES)}")
        if hosts < 1:
            raise LabError("a lab needs at least one host")
        previous = self.load_state()
        if previous and (previous["base_port"] != base_port or len(previous["hosts"]) != hosts
                         or previous.get("start_state", "stapling") != start_state):
            if self._anything_running(previous):
                raise LabError(
                    f"a lab with {len(previous['hosts'])} hosts on base port {previous['base_port']} (start state "
                    f"{previous.get('start_state', 'stapling')}) is running in {self.dir}; run 'lab.py down' first"
                )
            previous = {}
        self.dir.mkdir(parents=True, exist_ok=True)
        # Apache's children run as www-data when the lab runs as root, and must reach the lab's files.
        self.dir.chmod(0o755)
        binary = apache.find_binary()
        modules_dir = apache.find_modules_dir()
        state = {
            "version": 1,
            "dir": str(self.dir),
            "base_port": base_port,
            "start_state": start_state,
            "binary": str(binary),
            "responders": {},
            "hosts": [],
        }
        state["ssh"] = self.ssh.ensure(base_port + SSH_PORT_OFFSET, previous.get("ssh", {}))
        cas = {}
        for offset, ca_name in enumerate(CAS):
            port = base_port + offset
            url = f"http://{RESPONDER_HOSTNAMES[ca_name]}:{port}/"
            cas[ca_name] = pki.build_ca(self.pki_dir, ca_name, url)
            old = previous.get("responders", {}).get(ca_name, {})
            state["responders"][ca_name] = self._ensure_responder(ca_name, cas[ca_name], port, url, old)
        old_hosts = {host["name"]: host for host in previous.get("hosts", [])}
        for index in range(hosts):
            plan = self._plan_host(index, base_port, cas, modules_dir, start_state)
            old = old_hosts.get(plan.name, {})
            pid = old.get("pid")
            running = apache.current_master(pid, plan) is not None
            if reset and running:
                apache.stop(pid, plan)
                running = False
            if not running:
                write_tree(plan, render(plan))
                pid = apache.start(binary, plan)
            state["hosts"].append(self._host_record(binary, plan, pid))
        self.save_state(state)
        write_inventory(self.dir / "inventory.yml", state)
        return state

    def _plan_host(self, index: int, base_port: int, cas: dict, modules_dir: Path, start_state: str) -> HostPlan:
        name = f"web{index + 1}"
        vhosts = []
        for prefix, ca_name, kind, separate_chain in (*COMMON_VHOSTS, SPECIAL_VHOSTS[index % len(SPECIAL_VHOSTS)]):
            server_name = f"{prefix}.{name}.lab.test"
            alias = f"{prefix}.{name}.example.test"
            leaf = pki.issue_leaf(cas[ca_name], server_name, [server_name, alias], kind)
            vhosts.append(
                Vhost(
                    server_name=server_name,
                    alias=alias,
                    ca=ca_name,
                    kind=kind,
                    cert_file=leaf.cert_pem if separate_chain else leaf.fullchain_pem,
                    key_file=leaf.key_pem,
                    chain_file=cas[ca_name].chain_pem if separate_chain else None,
                )
            )
        return HostPlan(
            name=name,
            layout=LAYOUTS[index % len(LAYOUTS)],
            port=base_port + HOST_PORT_OFFSET + index,
            server_root=self.dir / "hosts" / name,
            vhosts=vhosts,
            modules_dir=modules_dir,
            run_as="www-data:www-data" if os.geteuid() == 0 else None,
            stapling=start_state == "stapling",
        )

    def _host_record(self, binary: Path, plan: HostPlan, pid: int) -> dict:
        return {
            "name": plan.name,
            "layout": plan.layout,
            "port": plan.port,
            "pid": pid,
            "server_root": str(plan.server_root),
            "config_file": str(plan.config_file),
            "pid_file": str(plan.pid_file),
            "error_log": str(plan.error_log),
            "modules_dir": str(plan.modules_dir),
            "run_as": plan.run_as,
            "ctl": apache.ctl_string(binary, plan),
            "reload": apache.reload_string(binary, plan),
            "vhosts": [
                {key: (str(value) if isinstance(value, Path) else value) for key, value in asdict(vhost).items()}
                for vhost in plan.vhosts
            ],
        }

    # ------------------------------------------------------------ responders

    def _ensure_responder(self, ca_name: str, ca: pki.CaFiles, port: int, url: str, old: dict) -> dict:
        record = {
            "ca": ca_name,
            "port": port,
            "url": url,
            "mode_file": str(self.dir / "responders" / f"{ca_name}.mode"),
            "log": str(self.dir / "responders" / f"{ca_name}.log"),
            "ca_dir": str(ca.dir),
            "pid": old.get("pid"),
        }
        Path(record["mode_file"]).parent.mkdir(parents=True, exist_ok=True)
        if old.get("port") == port and _responder_alive(record):
            responder.set_mode(Path(record["mode_file"]), "ok")
            return record
        if apache.port_answers(port):
            raise LabError(f"port {port} for the {ca_name} responder is already in use on 127.0.0.1")
        Path(record["mode_file"]).write_text("ok\n")
        with open(record["log"], "ab") as log:
            process = subprocess.Popen(
                [sys.executable, str(RESPONDER_SCRIPT), "--ca-dir", str(ca.dir), "--port", str(port),
                 "--mode-file", record["mode_file"]],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            )
        record["pid"] = process.pid
        deadline = time.monotonic() + 10
        while not apache.port_answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise LabError(f"the {ca_name} OCSP responder did not start; see {record['log']}")
            time.sleep(0.05)
        return record

    # ------------------------------------------------------------ other commands

    def fault(self, ca_name: str, mode: str) -> list[str]:
        state = self.require_state()
        names = list(state["responders"]) if ca_name == "all" else [ca_name]
        for name in names:
            record = state["responders"].get(name)
            if record is None:
                raise LabError(f"no responder for CA {name!r}; the lab has: {', '.join(state['responders'])}")
            try:
                responder.set_mode(Path(record["mode_file"]), mode)
            except ValueError as exc:
                raise LabError(str(exc)) from exc
        return names

    def reset_host(self, name: str) -> dict:
        """Put one host back to its pristine config and restart it (the cache starts empty)."""
        state = self.require_state()
        index = next((i for i, host in enumerate(state["hosts"]) if host["name"] == name), None)
        if index is None:
            raise LabError(f"no host {name!r}; the lab has: {', '.join(h['name'] for h in state['hosts'])}")
        cas = {ca_name: pki.load_ca(self.pki_dir, ca_name) for ca_name in CAS}
        binary = Path(state["binary"])
        plan = self._plan_host(index, state["base_port"], cas, Path(state["hosts"][index]["modules_dir"]),
                               state.get("start_state", "stapling"))
        apache.stop(state["hosts"][index]["pid"], plan)
        write_tree(plan, render(plan))
        state["hosts"][index] = self._host_record(binary, plan, apache.start(binary, plan))
        self.save_state(state)
        return state["hosts"][index]

    def status(self) -> dict:
        state = self.require_state()
        ssh = state.get("ssh", {})
        report = {"dir": state["dir"], "responders": [], "hosts": [],
                  "ssh": {"port": ssh.get("port"), "user": ssh.get("user"), "pid": ssh.get("pid"),
                          "running": self.ssh.alive(ssh.get("pid"))}}
        for name, record in state["responders"].items():
            applied = Path(record["mode_file"] + ".applied")
            report["responders"].append({
                "ca": name,
                "url": record["url"],
                "pid": record["pid"],
                "running": _responder_alive(record),
                "mode": applied.read_text().strip() if applied.exists() else "unknown",
            })
        for host in state["hosts"]:
            plan_view = _PlanView(host)
            report["hosts"].append({
                "name": host["name"],
                "layout": host["layout"],
                "port": host["port"],
                "pid": host["pid"],
                "running": apache.current_master(host["pid"], plan_view) is not None,  # type: ignore[arg-type]
                "answers": apache.port_answers(host["port"]),
                "vhosts": [f"{v['server_name']} ({v['ca']}, {v['kind']})" for v in host["vhosts"]],
            })
        return report

    def staples(self) -> list[dict]:
        """What a TLS client is stapled by every vhost right now (openssl s_client -status)."""
        state = self.require_state()
        seen = []
        for host in state["hosts"]:
            for vhost in host["vhosts"]:
                check = check_staple(host["port"], vhost["server_name"], self.pki_dir / vhost["ca"] / "bundle.pem")
                seen.append({"host": host["name"], "vhost": vhost["server_name"], "ca": vhost["ca"],
                             "kind": vhost["kind"], "handshake": check.handshake_ok, "stapled": check.stapled,
                             "response_status": check.response_status, "cert_status": check.cert_status})
        return seen

    def down(self) -> list[str]:
        state = self.load_state()
        stopped = []
        if self.ssh.stop(state.get("ssh", {}).get("pid")):
            stopped.append("sshd")
        for host in state.get("hosts", []):
            if apache.stop(host["pid"], _PlanView(host)):  # type: ignore[arg-type]
                stopped.append(host["name"])
        for name, record in state.get("responders", {}).items():
            if _responder_alive(record):
                os.kill(record["pid"], 15)
                _wait_gone(record["pid"])
                stopped.append(f"responder {name}")
        return stopped

    def _anything_running(self, state: dict) -> bool:
        hosts = any(apache.current_master(h["pid"], _PlanView(h)) for h in state.get("hosts", []))  # type: ignore[arg-type]
        responders = any(_responder_alive(r) for r in state.get("responders", {}).values())
        return hosts or responders or self.ssh.alive(state.get("ssh", {}).get("pid"))


class _PlanView:
    """Just enough of a HostPlan, rebuilt from the state file, to recognise a host's processes."""

    def __init__(self, record: dict):
        self.server_root = Path(record["server_root"])
        self.pid_file = Path(record["pid_file"])


def _responder_alive(record: dict) -> bool:
    arguments = command_line(record.get("pid"))
    return arguments is not None and str(RESPONDER_SCRIPT).encode() in arguments \
        and record["mode_file"].encode() in arguments


def _wait_gone(pid: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists():
            return
        try:
            os.waitpid(pid, os.WNOHANG)  # reap it when the responder is our own child
        except ChildProcessError:
            pass
        time.sleep(0.05)
    os.kill(pid, 9)
