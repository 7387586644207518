# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from ansible_collections.fleet.stapling.plugins.module_utils import host_lock

CONFIG = "/etc/apache2/apache2.conf"


class FakeClock(object):
    """A clock that moves only when the lock sleeps; ``on_sleep`` runs at each sleep (to let the holder go)."""

    def __init__(self, on_sleep=None):
        self.now = 0.0
        self.sleeps = 0
        self.on_sleep = on_sleep

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds
        self.sleeps += 1
        if self.on_sleep:
            self.on_sleep(self)


def test_the_lock_file_is_keyed_by_the_real_path_of_the_main_config(tmp_path):
    real = tmp_path / "apache2.conf"
    real.write_text("")
    link = tmp_path / "link.conf"
    link.symlink_to(real)
    assert host_lock.instance_key(str(link)) == host_lock.instance_key(str(real))
    assert host_lock.instance_key(str(real)) != host_lock.instance_key(str(tmp_path / "httpd.conf"))
    assert "/" not in host_lock.instance_key(str(real))


def test_state_dir_and_lock_file_are_closed_to_everyone_but_their_owner(tmp_path):
    state = tmp_path / "state"
    with host_lock.InstanceLock(str(state), CONFIG) as lock:
        assert oct(os.stat(str(state)).st_mode & 0o777) == oct(0o700)
        assert oct(os.stat(lock.path).st_mode & 0o777) == oct(0o600)
        holder = json.loads(open(lock.path).read())
        assert holder["pid"] == os.getpid() and holder["config_file"] == CONFIG
    assert os.listdir(str(state)) == []  # released: no lock file is left to name a holder


def test_a_state_dir_open_to_others_is_closed_again(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o777)
    os.chmod(str(state), 0o777)
    with host_lock.InstanceLock(str(state), CONFIG):
        assert oct(os.stat(str(state)).st_mode & 0o777) == oct(0o700)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user needs root")
def test_a_state_dir_of_another_user_is_refused(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    os.chown(str(state), 65534, 65534)
    with pytest.raises(host_lock.LockError, match="belongs to uid 65534"):
        host_lock.InstanceLock(str(state), CONFIG).acquire()


def test_a_second_writer_that_may_not_wait_fails_naming_the_holder(tmp_path):
    with host_lock.InstanceLock(str(tmp_path), CONFIG, doing="apache_stapling state=disabled"):
        with pytest.raises(host_lock.LockError) as raised:
            host_lock.InstanceLock(str(tmp_path), CONFIG, timeout=0).acquire()
    message = str(raised.value)
    assert "pid %d (apache_stapling state=disabled, since " % os.getpid() in message
    assert "which is gone" not in message and "lock_timeout=0" in message and "nothing was read or written" in message


def test_a_waiting_writer_gets_the_lock_when_the_holder_lets_go_and_says_whom_it_waited_for(tmp_path):
    holder = host_lock.InstanceLock(str(tmp_path), CONFIG, doing="apache_stapling undo")
    holder.acquire()

    def let_go_after_three_sleeps(clock):
        if clock.sleeps == 3:
            holder.release()

    clock = FakeClock(let_go_after_three_sleeps)
    waiter = host_lock.InstanceLock(str(tmp_path), CONFIG, timeout=10, clock=clock.clock, sleep=clock.sleep)
    with waiter:
        report = waiter.report()
    assert report["waited"] == pytest.approx(0.3)
    assert report["waited_for"].startswith("pid %d (apache_stapling undo, since " % os.getpid())
    assert report["stale"] is None


def test_the_wait_ends_at_lock_timeout(tmp_path):
    clock = FakeClock()
    with host_lock.InstanceLock(str(tmp_path), CONFIG):
        with pytest.raises(host_lock.LockError, match=r"Gave up after 2\.0 s \(lock_timeout=2\)"):
            host_lock.InstanceLock(str(tmp_path), CONFIG, timeout=2, clock=clock.clock, sleep=clock.sleep).acquire()
    assert clock.now == pytest.approx(2.0)


def test_checks_share_the_lock_and_a_writer_waiting_for_them_says_so(tmp_path):
    with host_lock.InstanceLock(str(tmp_path), CONFIG, shared=True), \
            host_lock.InstanceLock(str(tmp_path), CONFIG, shared=True):
        with pytest.raises(host_lock.LockError, match="check-mode run reading under a shared lock"):
            host_lock.InstanceLock(str(tmp_path), CONFIG, timeout=0).acquire()


def test_a_check_on_a_host_without_a_state_dir_makes_none(tmp_path):
    lock = host_lock.InstanceLock(str(tmp_path / "state"), CONFIG, shared=True, optional=True)
    with lock:
        assert lock.report()["unavailable"] is None
    assert os.listdir(str(tmp_path)) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user needs root")
def test_a_check_goes_on_without_the_lock_when_the_state_dir_is_unusable_and_a_writer_does_not(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    os.chown(str(state), 65534, 65534)
    lock = host_lock.InstanceLock(str(state), CONFIG, shared=True, optional=True)
    with lock:
        assert "belongs to uid 65534" in lock.report()["unavailable"]
    with pytest.raises(host_lock.LockError, match="set state_dir"):
        host_lock.InstanceLock(str(state), CONFIG).acquire()


HOLDER_SCRIPT = textwrap.dedent("""
    import sys, time
    from ansible_collections.fleet.stapling.plugins.module_utils import host_lock
    lock = host_lock.InstanceLock(sys.argv[1], sys.argv[2], doing="apache_stapling state=enabled")
    lock.acquire()
    print("locked", flush=True)
    time.sleep(60)
""")


def test_a_lock_held_by_a_killed_process_is_taken_at_once_and_named_as_left_by_a_dead_pid(tmp_path):
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    holder = subprocess.Popen([sys.executable, "-c", HOLDER_SCRIPT, str(tmp_path), CONFIG],
                              stdout=subprocess.PIPE, env=environment)
    try:
        assert holder.stdout.readline() == b"locked\n"
        with pytest.raises(host_lock.LockError, match="pid %d" % holder.pid):
            host_lock.InstanceLock(str(tmp_path), CONFIG, timeout=0).acquire()
        os.kill(holder.pid, signal.SIGKILL)
    finally:
        holder.kill()
        holder.wait()

    lock = host_lock.InstanceLock(str(tmp_path), CONFIG, timeout=0)
    with lock:
        report = lock.report()
    assert report["waited"] < 1.0 and report["waited_for"] is None
    assert report["stale"].startswith("left by pid %d (apache_stapling state=enabled, since " % holder.pid)
    assert report["stale"].endswith("which is gone")


def test_a_recycled_pid_is_not_taken_for_the_holder_that_left_the_file(tmp_path):
    # the lock file names our own pid, but with another start time: a process that is gone
    lock = host_lock.InstanceLock(str(tmp_path), CONFIG)
    os.makedirs(str(tmp_path), exist_ok=True)
    with open(lock.path, "w") as stream:
        json.dump({"pid": os.getpid(), "process_start": 1, "doing": "apache_stapling undo", "started": "then"}, stream)
    with lock:
        assert lock.report()["stale"] == "left by pid %d (apache_stapling undo, since then), which is gone" % os.getpid()


def test_a_writer_that_waited_locks_the_file_there_now_not_the_one_its_holder_removed(tmp_path):
    holder = host_lock.InstanceLock(str(tmp_path), CONFIG, doing="apache_stapling state=enabled")
    holder.acquire()
    third = []

    def let_go_then_a_third_run_comes(clock):
        if clock.sleeps == 2:
            holder.release()  # removes the file the waiter has open
            third.append(host_lock.InstanceLock(str(tmp_path), CONFIG, timeout=0))
            third[0].acquire()  # creates a new lock file and takes it before the waiter looks again
        if clock.sleeps == 5:
            third[0].release()

    clock = FakeClock(let_go_then_a_third_run_comes)
    waiter = host_lock.InstanceLock(str(tmp_path), CONFIG, timeout=10, clock=clock.clock, sleep=clock.sleep)
    with waiter:
        assert waiter._still_the_lock_file()  # pylint: disable=protected-access
        assert clock.sleeps >= 5  # it waited for the third run too: never two holders at once
        assert json.loads(open(waiter.path).read())["pid"] == os.getpid()
