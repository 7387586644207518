"""The Ansible inventory of the lab fleet.

Every host is reached the way a real inventory reaches a web server: over SSH (the lab's own sshd on
loopback, as the user running the lab, with a key and a pinned host key), with interpreter discovery, so that
the modules run under the host's system ``python3`` and the libraries its distribution ships. Pipelining is on,
as it should be on any fleet: one SSH round trip per task instead of three.

Every host also carries the collection's public contract for non-standard installs (``stapling_apache_*``), so
that the role, the playbooks and the modules drive these instances exactly as they would drive a host whose
Apache lives somewhere unusual. ``lab_*`` variables describe the lab itself, for tests and the demo.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def connection_vars(ssh: dict) -> dict:
    """How Ansible reaches a lab host: what an operator's inventory says for a web server."""
    return {
        "ansible_connection": "ssh",
        "ansible_host": "127.0.0.1",
        "ansible_port": ssh["port"],
        "ansible_user": ssh["user"],
        "ansible_ssh_private_key_file": ssh["private_key"],
        "ansible_ssh_common_args": f"-o UserKnownHostsFile={ssh['known_hosts']} -o StrictHostKeyChecking=yes "
                                   "-o IdentitiesOnly=yes",
        "ansible_python_interpreter": "auto_silent",
        "ansible_ssh_pipelining": True,
    }


def inventory_data(state: dict) -> dict:
    hosts = {}
    layout_groups: dict[str, dict] = {}
    for host in state["hosts"]:
        hosts[host["name"]] = {
            **connection_vars(state["ssh"]),
            "stapling_apache_server_root": host["server_root"],
            "stapling_apache_config_file": host["config_file"],
            "stapling_apache_ctl": host["ctl"],
            "stapling_apache_reload_command": host["reload"],
            "lab_layout": host["layout"],
            "lab_https_port": host["port"],
            "lab_error_log": host["error_log"],
            "lab_vhosts": [
                {"server_name": v["server_name"], "ca": v["ca"], "kind": v["kind"]} for v in host["vhosts"]
            ],
        }
        layout_groups.setdefault(f"lab_{host['layout']}", {"hosts": {}})["hosts"][host["name"]] = None
    responders = {
        name: {"url": record["url"], "port": record["port"], "ca_dir": record["ca_dir"]}
        for name, record in state["responders"].items()
    }
    return {
        "all": {
            "vars": {"lab_dir": state["dir"], "lab_responders": responders},
            "children": {"lab": {"hosts": hosts, "children": layout_groups}},
        }
    }


def to_yaml(value, indent: int = 0) -> str:
    """A small YAML writer for dicts, lists and scalars; scalars are JSON, which YAML reads as is."""
    pad = "  " * indent
    if isinstance(value, dict):
        if not value:
            return " {}\n"
        lines = []
        for key, item in value.items():
            if item is None:
                lines.append(f"{pad}{key}:\n")
            elif isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{key}:\n{to_yaml(item, indent + 1)}")
            else:
                lines.append(f"{pad}{key}: {_scalar(item)}\n")
        return "".join(lines)
    if isinstance(value, list):
        lines = []
        for item in value:
            if isinstance(item, dict) and item:
                body = to_yaml(item, indent + 1)
                lines.append(f"{pad}- {body.lstrip()}")
            else:
                lines.append(f"{pad}- {_scalar(item)}\n")
        return "".join(lines)
    return f"{pad}{_scalar(value)}\n"


def _scalar(value) -> str:
    return json.dumps(value)


def write_inventory(path: Path, state: dict) -> None:
    text = "# Written by tests/lab/lab.py: the lab fleet. Regenerated on every 'lab.py up'.\n---\n"
    text += to_yaml(inventory_data(state))
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
