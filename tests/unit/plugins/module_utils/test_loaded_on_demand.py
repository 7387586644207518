# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a module run loads only when it needs it: cryptography's x509 code (about 25 ms and 4 MiB of each run)
when a certificate is read, pyOpenSSL and the OCSP client when a reload shakes hands. Each case runs in a fresh
interpreter, as a module does, since this test session has loaded everything already."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.fleet.stapling.tests.unit.plugins.module_utils.test_certificate_cache import (
    host_with_two_sites,
)

HEAVY = ("cryptography.x509", "OpenSSL", "ansible_collections.fleet.stapling.plugins.module_utils.ocsp_client",
         "ansible_collections.fleet.stapling.plugins.module_utils.staple_probe")

FACTS_RUN = """
import json, sys
from ansible_collections.fleet.stapling.plugins.module_utils import certificate_cache, stapling_facts
from ansible_collections.fleet.stapling.plugins.module_utils.apache_config import parse_config
cache = certificate_cache.CertificateFactsCache(sys.argv[2])
facts = stapling_facts.stapling_facts(parse_config(sys.argv[1]), cache=cache)
cache.save()
print(json.dumps({"x509": "cryptography.x509" in sys.modules, "hits": cache.hits, "misses": cache.misses,
                  "certificates": [vhost["certificate"] for vhost in facts["vhosts"]]}))
"""


def fresh_python(code, *args):
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    found = subprocess.run([sys.executable, "-c", code] + [str(arg) for arg in args], env=environment,
                           capture_output=True, text=True, check=True)
    return json.loads(found.stdout)


def test_the_apache_stapling_module_loads_no_x509_pyopenssl_or_ocsp_client_to_start():
    pytest.importorskip("ansible.module_utils.basic")  # the compatibility matrix's venvs have no ansible-core
    code = ("import json, sys\n"
            "import ansible_collections.fleet.stapling.plugins.modules.apache_stapling\n"
            "print(json.dumps(sorted(name for name in %r if name in sys.modules)))" % (HEAVY,))
    assert fresh_python(code) == []


def test_certificates_are_parsed_only_when_the_cache_lacks_them(tmp_path):
    _ca, main = host_with_two_sites(tmp_path, must_staple_second=True)
    first = fresh_python(FACTS_RUN, main, tmp_path / "state")
    assert first["x509"] and (first["hits"], first["misses"]) == (0, 2)
    second = fresh_python(FACTS_RUN, main, tmp_path / "state")
    assert not second["x509"] and (second["hits"], second["misses"]) == (2, 0)
    # the same facts either way: the Must-Staple guard sees what a full read would show
    assert second["certificates"] == first["certificates"]
    assert [certificate["must_staple"] for certificate in second["certificates"]] == [False, True]


def test_a_cryptography_whose_x509_cannot_load_gives_each_vhost_a_plain_certificate_error(tmp_path, monkeypatch):
    from ansible_collections.fleet.stapling.plugins.module_utils import certificates, stapling_facts
    from ansible_collections.fleet.stapling.plugins.module_utils.apache_config import parse_config
    _ca, main = host_with_two_sites(tmp_path)
    monkeypatch.setattr(certificates, "HAS_CRYPTOGRAPHY", False)
    monkeypatch.setattr(certificates, "CRYPTOGRAPHY_IMPORT_ERROR",
                        "Traceback (most recent call last):\nImportError: no _rust bindings\n")
    facts = stapling_facts.stapling_facts(parse_config(str(main)))
    assert [vhost["certificate"] for vhost in facts["vhosts"]] == [None, None]
    assert {vhost["certificate_error"] for vhost in facts["vhosts"]} == {
        "cryptography cannot load its x509 support: ImportError: no _rust bindings"}
