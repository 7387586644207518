# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment(object):
    # The options that find the Apache instance: the collection's stapling_apache_* contract.
    DOCUMENTATION = r"""
options:
  ctl:
    description:
      - The command prefix that runs C(-t), C(-V), C(-M) and C(-S) for this Apache instance, as a string or a list.
      - Playbooks pass the host variable C(stapling_apache_ctl) here.
      - When omitted, the first of C(apache2ctl), C(apachectl) (also cPanel's C(/usr/local/apache/bin/apachectl)),
        C(httpd) and C(apache2) found in the usual places is used.
    type: raw
  config_file:
    description:
      - The main configuration file, where reading starts (C(stapling_apache_config_file)).
      - When omitted, it comes from C(-f) in O(ctl), else from the C(SERVER_CONFIG_FILE) that C(ctl -V) reports.
    type: path
  server_root:
    description:
      - The ServerRoot that relative paths start from until the config sets one (C(stapling_apache_server_root)).
      - When omitted, it comes from C(-d) in O(ctl), else from the C(HTTPD_ROOT) that C(ctl -V) reports.
    type: path
requirements:
  - Python >= 3.8 on the managed host
"""
