# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Test-only callback: writes every task result's diff, per host, to the JSON lines file FLEET_STAPLING_DIFFS.

The check-mode test compares these (what --check --diff promised) with what a real run then wrote.
"""

from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: record_diffs
type: aggregate
short_description: Record each task's diff for the check-mode test
description: Appends every diff a task returns to the JSON lines file named by FLEET_STAPLING_DIFFS.
requirements: [enabled in callbacks_enabled]
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "record_diffs"
    CALLBACK_NEEDS_ENABLED = True

    def v2_runner_on_ok(self, result):
        path = os.environ.get("FLEET_STAPLING_DIFFS")
        diffs = result._result.get("diff")
        if not path or not diffs:
            return
        if isinstance(diffs, dict):
            diffs = [diffs]
        with open(path, "a") as stream:
            for diff in diffs:
                stream.write(json.dumps({"host": result._host.get_name(), "task": result._task.get_name(),
                                         "changed": bool(result._result.get("changed")), "diff": diff}) + "\n")
