# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import traceback

from ansible.errors import AnsibleFilterError

try:
    import jmespath
except ImportError:
    JMESPATH_IMPORT_ERROR = traceback.format_exc()
else:
    JMESPATH_IMPORT_ERROR = None


def json_query(data, expression):
    """Run a JMESPath expression over plain data (the fleet reports are computed this way)."""
    if JMESPATH_IMPORT_ERROR:
        raise AnsibleFilterError("fleet.stapling.json_query needs the jmespath Python library on the controller")
    try:
        return jmespath.search(expression, _plain(data))
    except jmespath.exceptions.JMESPathError as exc:
        raise AnsibleFilterError("json_query: %s" % exc)


def _plain(value):
    """Ansible hands filters its own dict/list/str subclasses; JMESPath wants the plain types."""
    if isinstance(value, dict):
        return dict((str(key), _plain(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, str):
        return str(value)
    return value


class FilterModule(object):
    def filters(self):
        return {"json_query": json_query}
