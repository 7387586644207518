# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark-only callback: per host, each task result with its duration, written as JSON lines.

Enabled by the benches with ANSIBLE_CALLBACKS_ENABLED=task_timing and FLEET_STAPLING_TIMINGS=<file>. Skipped
tasks are counted apart: they cost the controller a little but no round trip to the host.
"""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: task_timing
    type: aggregate
    short_description: per-host task durations for the benchmarks
    description: Writes one JSON line per task result (host, task, action, status, seconds) to FLEET_STAPLING_TIMINGS.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_timing"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._path = os.environ.get("FLEET_STAPLING_TIMINGS")
        self._started = {}

    def _write(self, result, status):
        if not self._path:
            return
        host = result._host.get_name()  # pylint: disable=protected-access
        task = result._task  # pylint: disable=protected-access
        began = self._started.get((host, task._uuid)) or self._started.get(task._uuid)  # pylint: disable=protected-access
        record = {"host": host, "task": task.get_name(), "action": task.action, "status": status,
                  "seconds": round(time.monotonic() - began, 4) if began else None}
        with open(self._path, "a", encoding="utf-8") as stream:
            stream.write(json.dumps(record) + "\n")

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._started[task._uuid] = time.monotonic()  # pylint: disable=protected-access

    def v2_playbook_on_handler_task_start(self, task):
        self._started[task._uuid] = time.monotonic()  # pylint: disable=protected-access

    def v2_runner_on_start(self, host, task):
        self._started[(host.get_name(), task._uuid)] = time.monotonic()  # pylint: disable=protected-access

    def v2_runner_on_ok(self, result):
        self._write(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._write(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._write(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._write(result, "unreachable")
