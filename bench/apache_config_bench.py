#!/usr/bin/env python
"""How apache_stapling's read-plan-check path scales with the number of SSL vhosts (cPanel-sized hosts).

Times are reported as ratios to a baseline measured in the same run (reading the same bytes and splitting
them into lines), so that results compare across machines. Usage:

    .venv/bin/python bench/apache_config_bench.py [--vhosts 5000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "unit" / "plugins" / "module_utils"))
COLLECTIONS = Path(tempfile.mkdtemp(prefix="fleet-stapling-bench-"))
(COLLECTIONS / "ansible_collections" / "fleet").mkdir(parents=True)
(COLLECTIONS / "ansible_collections" / "fleet" / "stapling").symlink_to(REPO)
sys.path.insert(0, str(COLLECTIONS))

from certificate_factory import TestCA, pem  # noqa: E402
from ansible_collections.fleet.stapling.plugins.module_utils import stapling_facts, stapling_plan  # noqa: E402
from ansible_collections.fleet.stapling.plugins.module_utils.apache_config import parse_config  # noqa: E402

DISTINCT_CERTIFICATES = 200


def build_tree(root: Path, vhosts: int) -> Path:
    ca = TestCA()
    for number in range(DISTINCT_CERTIFICATES):
        leaf = ca.leaf("site%d.test" % number, "http://ocsp%d.test/" % (number % 4))
        (root / ("c%d.pem" % number)).write_bytes(pem(leaf) + ca.pem)
    lines = ["LoadModule ssl_module modules/mod_ssl.so",
             "LoadModule socache_shmcb_module modules/mod_socache_shmcb.so",
             "SSLSessionCache shmcb:/run/x(512000)", "SSLUseStapling on", "SSLStaplingCache shmcb:/run/s(256000)"]
    for number in range(vhosts):
        lines += ["<VirtualHost 10.0.%d.%d:443>" % (number // 250, number % 250),
                  "  ServerName site%d.test" % number, "  ServerAlias www.site%d.test" % number,
                  "  DocumentRoot /home/u%d/public_html" % number, "  SSLEngine on",
                  "  SSLCertificateFile %s/c%d.pem" % (root, number % DISTINCT_CERTIFICATES),
                  "  <Directory /home/u%d>" % number, "    Options -Indexes", "  </Directory>",
                  '  IncludeOptional "%s/userdata/u%d/*.conf"' % (root, number), "</VirtualHost>"]
    main = root / "httpd.conf"
    main.write_text("\n".join(lines) + "\n")
    return main


def best_of(repeat: int, action) -> float:
    times = []
    for _round in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vhosts", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fleet-stapling-tree-") as directory:
        main_file = build_tree(Path(directory), args.vhosts)
        config = parse_config(str(main_file))
        facts = stapling_facts.stapling_facts(config)
        desired = stapling_plan.Desired(state="disabled", ocsp_hosts=["ocsp1.test"])

        def parse(overrides=None):
            return parse_config(str(main_file), overrides=overrides)

        measured = {
            "baseline: read and split lines": best_of(args.repeat, lambda: main_file.read_bytes().splitlines(True)),
            "parse the tree": best_of(args.repeat, parse),
            "facts incl. certificates": best_of(args.repeat, lambda: stapling_facts.stapling_facts(config)),
            "plan one CA's sites (no write)": best_of(args.repeat, lambda: stapling_plan.plan_change(parse, desired)),
        }
    baseline = measured["baseline: read and split lines"]
    print("%d SSL vhosts, %d distinct certificates, best of %d" % (len(facts["vhosts"]), DISTINCT_CERTIFICATES,
                                                                   args.repeat))
    for name, seconds in measured.items():
        print("  %-34s %8.3f s  %8.0fx baseline" % (name, seconds, seconds / baseline))
    return 0


if __name__ == "__main__":
    sys.exit(main())
