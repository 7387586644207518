# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os

import pytest

from ansible_collections.fleet.stapling.plugins.module_utils import apache_write


def _copy(source, destination):
    with open(source, "rb") as reader, open(destination, "wb") as writer:
        writer.write(reader.read())
    return destination


def test_a_backup_copy_that_fails_leaves_no_partial_file_and_nothing_changed(tmp_path):
    first = tmp_path / "a.conf"
    second = tmp_path / "b.conf"
    first.write_bytes(b"SSLUseStapling on\n")
    second.write_bytes(b"SSLUseStapling on\n")

    def copy_until_the_disk_is_full(source, destination):
        with open(destination, "wb") as stream:
            stream.write(b"SSLUse")  # half a copy, then the disk is full
        if source.endswith("b.conf"):
            raise IOError(28, "No space left on device")
        _copy(source, destination)

    def backup(path):
        return apache_write.backup_copy(path, copy_until_the_disk_is_full)

    rendered = {str(first): (b"SSLUseStapling on\n", b"SSLUseStapling off\n"),
                str(second): (b"SSLUseStapling on\n", b"SSLUseStapling off\n")}
    with pytest.raises(apache_write.WriteError, match="nothing was changed: could not make a backup copy of .*b.conf: "
                                                      r"\[Errno 28\] No space left on device"):
        apache_write.apply_changes(rendered, validate=lambda: (True, ""), backup=backup)
    assert sorted(os.listdir(str(tmp_path))) == ["a.conf", "b.conf"]
    assert first.read_bytes() == second.read_bytes() == b"SSLUseStapling on\n"


def test_a_backup_copy_is_named_as_discard_backups_expects(tmp_path):
    target = tmp_path / "site.conf"
    target.write_bytes(b"x\n")
    copy = apache_write.backup_copy(str(target), _copy)
    assert open(copy, "rb").read() == b"x\n"
    assert apache_write.discard_backups([{"backups": {str(target): copy}}]) == [copy]
