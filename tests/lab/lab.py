#!/usr/bin/env python
"""The fleet.stapling lab: a local fleet of real Apache hosts and real OCSP responders on loopback.

  lab.py up [--hosts N] [--base-port P] [--reset]   build the PKI, start responders and hosts, write inventory.yml
  lab.py status [--json]                          what runs, on which port, in which fault mode
  lab.py staples [--json]                         what each vhost staples, as openssl s_client -status sees it
  lab.py fault CA|all MODE                        switch a responder's fault mode while it runs
  lab.py reset-host NAME                          pristine config for one host, restarted with an empty cache
  lab.py inventory                                print the inventory's path
  lab.py down                                     stop what the lab started (by pid)

The lab lives in $FLEET_LAB_DIR (default /tmp/fleet-stapling-lab) or --dir.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fleetlab import responder  # noqa: E402
from fleetlab.apache import LabError  # noqa: E402
from fleetlab.fleet import DEFAULT_BASE_PORT, DEFAULT_DIR, DEFAULT_HOSTS, START_STATES, Lab  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="lab directory (default: %(default)s)")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the lab")
    up.add_argument("--hosts", type=int, default=DEFAULT_HOSTS)
    up.add_argument("--base-port", type=int, default=DEFAULT_BASE_PORT)
    up.add_argument("--reset", action="store_true", help="restart running hosts with pristine configs")
    up.add_argument("--start-state", choices=START_STATES, default="stapling",
                    help="hosts start with stapling set up, or having never had it (default: %(default)s)")
    status = commands.add_parser("status", help="show the lab")
    status.add_argument("--json", action="store_true")
    staples = commands.add_parser("staples", help="show what every vhost staples")
    staples.add_argument("--json", action="store_true")
    fault = commands.add_parser("fault", help="switch a responder's fault mode")
    fault.add_argument("ca")
    fault.add_argument("mode", choices=responder.MODES)
    reset = commands.add_parser("reset-host", help="restore one host's config and restart it")
    reset.add_argument("name")
    commands.add_parser("inventory", help="print the inventory path")
    commands.add_parser("down", help="stop the lab")
    args = parser.parse_args(argv)

    lab = Lab(args.dir)
    try:
        return _run(lab, args)
    except LabError as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 1


def _run(lab: Lab, args: argparse.Namespace) -> int:
    if args.command == "up":
        lab.up(hosts=args.hosts, base_port=args.base_port, reset=args.reset, start_state=args.start_state)
        _print_status(lab.status())
        print(f"\ninventory: {lab.dir / 'inventory.yml'}")
    elif args.command == "status":
        report = lab.status()
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            _print_status(report)
        healthy = (all(r["running"] for r in report["responders"]) and all(h["answers"] for h in report["hosts"])
                   and report["ssh"]["running"])
        return 0 if healthy else 3
    elif args.command == "staples":
        seen = lab.staples()
        if args.json:
            print(json.dumps(seen, indent=2))
        else:
            _print_staples(seen)
    elif args.command == "fault":
        for name in lab.fault(args.ca, args.mode):
            print(f"responder {name}: {args.mode}")
    elif args.command == "reset-host":
        host = lab.reset_host(args.name)
        print(f"{host['name']}: restarted with a pristine config, pid {host['pid']}")
    elif args.command == "inventory":
        lab.require_state()
        print(lab.dir / "inventory.yml")
    elif args.command == "down":
        stopped = lab.down()
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


def _print_staples(seen: list[dict]) -> None:
    print(f"  {'host':<6} {'vhost':<30} {'CA':<6} {'certificate':<12} stapled")
    for item in seen:
        if not item["handshake"]:
            answer = "TLS handshake FAILED"
        elif not item["stapled"]:
            answer = "-"
        elif item["cert_status"]:
            answer = f"{item['cert_status']} ({item['response_status']})"
        else:
            answer = f"{item['response_status']} (no certificate status)"
        print(f"  {item['host']:<6} {item['vhost']:<30} {item['ca']:<6} {item['kind']:<12} {answer}")


def _print_status(report: dict) -> None:
    print(f"lab in {report['dir']}")
    ssh = report["ssh"]
    state = "running" if ssh["running"] else "STOPPED"
    print(f"  sshd {'':<16} {ssh['user']}@127.0.0.1:{ssh['port']:<11} {state}")
    for item in report["responders"]:
        state = "running" if item["running"] else "STOPPED"
        print(f"  responder {item['ca']:<6} {item['url']:<28} {state:<8} mode={item['mode']}")
    for host in report["hosts"]:
        state = "running" if host["running"] and host["answers"] else "DOWN"
        print(f"  host {host['name']:<6} {host['layout']:<7} 127.0.0.1:{host['port']:<6} {state}")
        for vhost in host["vhosts"]:
            print(f"      {vhost}")


if __name__ == "__main__":
    sys.exit(main())
