# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Whether the host's cryptography can be used, asked without loading its x509 code.

A module checks this before it starts, and reports the answer in plain words. Loading ``cryptography.x509``
costs about 25 ms and 4 MiB of every module run; a check-mode run whose certificates all come from the
facts kept between runs (certificate_cache) never needs it, so only ``certificates`` loads it, when a
certificate is read. ``CertificateError`` is here for the same reason: code that only catches it loads no x509.
"""

from __future__ import annotations

import re
import sys
import traceback

try:
    import cryptography
except ImportError:  # reported by the modules through cryptography_problem()
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None

# The oldest cryptography the modules are tested with (tests/tools/compat.sh): Ubuntu 22.04 ships it.
CRYPTOGRAPHY_FLOOR = "3.4.8"


class CertificateError(Exception):
    """A certificate file could not be read or parsed; the message names the file."""


def _release(version):
    """(3, 4, 8) from "3.4.8", "38.0.4" or "42.0.0rc1": the leading numbers only."""
    numbers = []
    for part in version.split("."):
        digits = re.match(r"\d+", part)
        if digits is None:
            break
        numbers.append(int(digits.group()))
    return tuple(numbers)


def cryptography_problem(found=None):
    """Why the modules cannot use this Python's cryptography (missing, too old), or None when they can."""
    if found is None:
        if not HAS_CRYPTOGRAPHY:
            return ("the Python library cryptography (>= %s) is not installed for %s on the managed host; install "
                    "the distribution's python3-cryptography or point ansible_python_interpreter at a Python "
                    "that has it" % (CRYPTOGRAPHY_FLOOR, sys.executable))
        found = cryptography.__version__
    if _release(found) < _release(CRYPTOGRAPHY_FLOOR):
        return ("cryptography %s is too old: fleet.stapling needs cryptography >= %s on the managed host (found "
                "for %s); upgrade the distribution's python3-cryptography or point ansible_python_interpreter "
                "at a Python with a newer one" % (found, CRYPTOGRAPHY_FLOOR, sys.executable))
    return None
