"""Apache config trees for the lab hosts, in the three shapes real fleets have.

Each layout renders a complete, self-contained ServerRoot for one instance of Debian's apache2 binary:

* ``debian``: apache2.conf, mods-available/-enabled, conf-available/-enabled, sites-available/-enabled,
  reached through IncludeOptional, with paths from ``Define`` variables. Stapling is switched on inside
  each vhost and the cache lives in an a2enconf-style snippet.
* ``rhel``: conf/httpd.conf, conf.modules.d/, conf.d/, a ``modules`` symlink and ServerRoot-relative
  paths. Stapling is switched on once at server scope (conf.d/ssl.conf) and inherited by the vhosts.
* ``cpanel``: an EasyApache-style conf/httpd.conf that cPanel regenerates (vhosts inline, the hardened
  stapling block) plus the hand-editable includes/pre_virtualhost_global.conf and pre_virtualhost_2.conf,
  and per-vhost userdata includes (one of them switches stapling on, with CRLF line endings).

Rendering is pure: it returns file contents and symlinks, and ``write_tree`` puts them on disk.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

LAYOUTS = ("debian", "rhel", "cpanel")

# Modules every lab instance needs; mod_log_config, mod_version and mod_unixd are built into Debian's binary.
BASE_MODULES = ("mpm_event", "authz_core", "mime", "dir", "socache_shmcb", "ssl")


@dataclass(frozen=True)
class Vhost:
    """One SSL virtual host of a lab host and the certificate it serves."""

    server_name: str
    alias: str
    ca: str
    kind: str
    cert_file: Path
    key_file: Path
    # When set, cert_file holds the leaf only and the chain comes from SSLCertificateChainFile.
    chain_file: Path | None = None


@dataclass
class HostPlan:
    """Everything needed to render and run one lab host."""

    name: str
    layout: str
    port: int
    server_root: Path
    vhosts: list[Vhost]
    modules_dir: Path
    run_as: str | None = None  # "user:group" when started as root
    # False: the host has never had stapling (no SSLUseStapling, no SSLStaplingCache anywhere), as many do.
    stapling: bool = True

    @property
    def config_file(self) -> Path:
        relative = "apache2.conf" if self.layout == "debian" else "conf/httpd.conf"
        return self.server_root / relative

    @property
    def pid_file(self) -> Path:
        return self.server_root / ("run/apache2.pid" if self.layout == "debian" else "run/httpd.pid")

    @property
    def error_log(self) -> Path:
        return self.server_root / ("logs/error.log" if self.layout == "debian" else "logs/error_log")

    @property
    def document_root(self) -> Path:
        return self.server_root / "htdocs"


@dataclass
class Tree:
    """A rendered ServerRoot: files by relative path, and symlinks (relative path -> target)."""

    files: dict[str, str] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)


def render(host: HostPlan) -> Tree:
    if host.layout not in LAYOUTS:
        raise ValueError(f"unknown layout {host.layout!r}; expected one of {', '.join(LAYOUTS)}")
    renderer = {"debian": _render_debian, "rhel": _render_rhel, "cpanel": _render_cpanel}[host.layout]
    tree = renderer(host)
    tree.files["mime.types"] = "text/html\thtml htm\ntext/plain\ttxt\n"
    tree.files["htdocs/index.html"] = f"<!doctype html><title>{host.name}</title><p>{host.name} ({host.layout})\n"
    return tree


def write_tree(host: HostPlan, tree: Tree) -> None:
    """Write a rendered tree as the host's whole ServerRoot: files that tests or tools added are removed,
    so a reset host is pristine. Logs and the run directory stay."""
    if host.server_root.is_dir():
        for entry in host.server_root.iterdir():
            if entry.name in ("run", "logs"):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    for sub in ("run", "logs"):
        (host.server_root / sub).mkdir(parents=True, exist_ok=True)
    for relative, content in tree.files.items():
        path = host.server_root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".lab-tmp")
        temporary.write_text(content, encoding="utf-8")
        os.replace(temporary, path)
    for relative, target in tree.links.items():
        link = host.server_root / relative
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)


# ---------------------------------------------------------------- pieces shared by the layouts


def _process_settings(host: HostPlan) -> list[str]:
    """Small worker pools: a lab fleet of many instances must fit on a 2-core machine."""
    lines = [
        f'TypesConfig "{host.server_root}/mime.types"',
        "StartServers 1",
        "ServerLimit 4",
        "ThreadsPerChild 8",
        "MaxRequestWorkers 16",
        "MinSpareThreads 4",
        "MaxSpareThreads 16",
        "Timeout 30",
    ]
    if host.run_as:
        user, group = host.run_as.split(":", 1)
        lines += [f"User {user}", f"Group {group}"]
    return lines


def _vhost_block(host: HostPlan, vhost: Vhost, address: str, extra_line: str | None, indent: str = "") -> list[str]:
    inner = [
        f"ServerName {vhost.server_name}",
        f"ServerAlias {vhost.alias}",
        f'DocumentRoot "{host.document_root}"',
        "SSLEngine on",
        f'SSLCertificateFile "{vhost.cert_file}"',
        f'SSLCertificateKeyFile "{vhost.key_file}"',
    ]
    if vhost.chain_file:
        inner.append(f'SSLCertificateChainFile "{vhost.chain_file}"')
    if extra_line:
        inner.append(extra_line)
    body = [f"{indent}    {line}" for line in inner]
    return [f"{indent}<VirtualHost {address}>", *body, f"{indent}</VirtualHost>"]


def _header(what: str) -> str:
    return f"# fleet.stapling lab: {what}\n"


# ---------------------------------------------------------------- Debian / Ubuntu


def _render_debian(host: HostPlan) -> Tree:
    tree = Tree()
    root = host.server_root
    tree.files["apache2.conf"] = "\n".join(
        [
            _header("main config, Debian layout").rstrip("\n"),
            f"Define APACHE_RUN_DIR {root}/run",
            f"Define APACHE_LOG_DIR {root}/logs",
            f'ServerRoot "{root}"',
            "DefaultRuntimeDir ${APACHE_RUN_DIR}",
            "PidFile ${APACHE_RUN_DIR}/apache2.pid",
            f"ServerName {host.name}.lab.test",
            *_process_settings(host),
            "ErrorLog ${APACHE_LOG_DIR}/error.log",
            "LogLevel warn",
            "",
            "IncludeOptional mods-enabled/*.load",
            "IncludeOptional mods-enabled/*.conf",
            "Include ports.conf",
            "",
            '<Directory "/">',
            "    AllowOverride None",
            "    Require all denied",
            "</Directory>",
            f'<Directory "{host.document_root}">',
            "    Require all granted",
            "</Directory>",
            "",
            'LogFormat "%h %l %u %t \\"%r\\" %>s %O" common',
            "IncludeOptional conf-enabled/*.conf",
            "IncludeOptional sites-enabled/*.conf",
            "",
        ]
    )
    tree.files["ports.conf"] = _header("ports") + f"<IfModule ssl_module>\n    Listen 127.0.0.1:{host.port}\n</IfModule>\n"
    for module in BASE_MODULES:
        tree.files[f"mods-available/{module}.load"] = f"LoadModule {module}_module {host.modules_dir}/mod_{module}.so\n"
        tree.links[f"mods-enabled/{module}.load"] = f"../mods-available/{module}.load"
    # Debian's package ships every module's .load file; mod_md's is there, not enabled.
    tree.files["mods-available/md.load"] = f"LoadModule md_module {host.modules_dir}/mod_md.so\n"
    tree.files["mods-available/ssl.conf"] = (
        "<IfModule mod_ssl.c>\n"
        "\tSSLRandomSeed startup builtin\n"
        "\tSSLSessionCache\t\tshmcb:${APACHE_RUN_DIR}/ssl_scache(512000)\n"
        "\tSSLSessionCacheTimeout\t300\n"
        "\tSSLProtocol all -SSLv3\n"
        "</IfModule>\n"
    )
    tree.links["mods-enabled/ssl.conf"] = "../mods-available/ssl.conf"
    # Debian's package always ships some conf-available snippets, enabled a2enconf-style.
    tree.files["conf-available/security.conf"] = (
        _header("as Debian's apache2 package ships it") + "ServerTokens OS\nServerSignature On\nTraceEnable Off\n"
    )
    tree.links["conf-enabled/security.conf"] = "../conf-available/security.conf"
    if host.stapling:
        tree.files["conf-available/ocsp-stapling.conf"] = (
            _header("stapling cache, enabled a2enconf-style")
            + "<IfModule mod_ssl.c>\n"
            + "    SSLStaplingCache shmcb:${APACHE_RUN_DIR}/ssl_stapling(128000)\n"
            + "</IfModule>\n"
        )
        tree.links["conf-enabled/ocsp-stapling.conf"] = "../conf-available/ocsp-stapling.conf"
    for vhost in host.vhosts:
        stapling = "SSLUseStapling on" if host.stapling else None
        block = _vhost_block(host, vhost, f"*:{host.port}", stapling, indent="    ")
        site = f"{vhost.server_name}.conf"
        tree.files[f"sites-available/{site}"] = "\n".join(["<IfModule mod_ssl.c>", *block, "</IfModule>", ""])
        tree.links[f"sites-enabled/{site}"] = f"../sites-available/{site}"
    return tree


# ---------------------------------------------------------------- RHEL / Fedora


def _render_rhel(host: HostPlan) -> Tree:
    tree = Tree()
    tree.links["modules"] = str(host.modules_dir)
    tree.files["conf/httpd.conf"] = "\n".join(
        [
            _header("main config, RHEL layout").rstrip("\n"),
            f'ServerRoot "{host.server_root}"',
            "Include conf.modules.d/*.conf",
            "DefaultRuntimeDir run",
            "PidFile run/httpd.pid",
            f"ServerName {host.name}.lab.test",
            *_process_settings(host),
            'ErrorLog "logs/error_log"',
            "LogLevel warn",
            '<Directory "/">',
            "    AllowOverride none",
            "    Require all denied",
            "</Directory>",
            f'DocumentRoot "{host.document_root}"',
            f'<Directory "{host.document_root}">',
            "    Require all granted",
            "</Directory>",
            "<IfModule dir_module>",
            "    DirectoryIndex index.html",
            "</IfModule>",
            "IncludeOptional conf.d/*.conf",
            "",
        ]
    )
    mpm = BASE_MODULES[0]
    tree.files["conf.modules.d/00-mpm.conf"] = f"LoadModule {mpm}_module modules/mod_{mpm}.so\n"
    base = [m for m in BASE_MODULES if m not in (mpm, "ssl")]
    tree.files["conf.modules.d/00-base.conf"] = "".join(f"LoadModule {m}_module modules/mod_{m}.so\n" for m in base)
    tree.files["conf.modules.d/00-ssl.conf"] = "LoadModule ssl_module modules/mod_ssl.so\n"
    tree.files["conf.d/ssl.conf"] = "\n".join(
        [
            _header("TLS defaults and server-wide stapling, RHEL layout").rstrip("\n"),
            f"Listen 127.0.0.1:{host.port} https",
            "SSLSessionCache         shmcb:run/sslcache(512000)",
            "SSLSessionCacheTimeout  300",
            *(["SSLStaplingCache        shmcb:run/ssl_stapling(128000)", "SSLUseStapling          on"]
              if host.stapling else []),
            "",
        ]
    )
    for vhost in host.vhosts:
        block = _vhost_block(host, vhost, f"127.0.0.1:{host.port}", None)
        tree.files[f"conf.d/{vhost.server_name}.conf"] = "\n".join([*block, ""])
    return tree


# ---------------------------------------------------------------- cPanel / EasyApache


def _render_cpanel(host: HostPlan) -> Tree:
    tree = Tree()
    root = host.server_root
    includes = root / "conf/includes"
    # cPanel never lets a site owner edit httpd.conf: per-vhost settings live in userdata include files,
    # which every vhost pulls in. The first site's owner switched stapling on there, in their own spelling.
    vhost_lines: list[str] = []
    for position, vhost in enumerate(host.vhosts):
        userdata = f"conf/userdata/ssl/2_4/user{position}/{vhost.server_name}"
        include = f'IncludeOptional "{root}/{userdata}/*.conf"'
        vhost_lines += _vhost_block(host, vhost, f"127.0.0.1:{host.port}", include)
        vhost_lines.append("")
        if position == 0 and host.stapling:
            tree.files[f"{userdata}/stapling.conf"] = "sslusestapling On\r\n"
    tree.files["conf/httpd.conf"] = "\n".join(
        [
            "# This file is generated by the lab in the way cPanel generates it: do not edit it by hand,",
            "# put global directives in conf/includes/pre_virtualhost_global.conf instead.",
            "# Its templates, as cPanel names them: /var/cpanel/templates/apache2_4/main.default",
            *[f"LoadModule {m}_module {host.modules_dir}/mod_{m}.so" for m in BASE_MODULES],
            f'ServerRoot "{root}"',
            f"PidFile {root}/run/httpd.pid",
            f"DefaultRuntimeDir {root}/run",
            f"ServerName {host.name}.lab.test",
            *_process_settings(host),
            f'ErrorLog "{root}/logs/error_log"',
            "LogLevel warn",
            f'Include "{includes}/pre_main_global.conf"',
            f'Include "{includes}/pre_main_2.conf"',
            f"Listen 127.0.0.1:{host.port}",
            '<Directory "/">',
            "    AllowOverride None",
            "    Require all denied",
            "</Directory>",
            f'<Directory "{host.document_root}">',
            "    Require all granted",
            "</Directory>",
            "",
            "<IfModule ssl_module>",
            f"    SSLSessionCache shmcb:{root}/logs/ssl_gcache_data(512000)",
            "    SSLSessionCacheTimeout 300",
            *([
                "    SSLUseStapling on",
                f"    SSLStaplingCache shmcb:{root}/run/stapling_cache(256000)",
                "    SSLStaplingReturnResponderErrors off",
                "    SSLStaplingErrorCacheTimeout 60",
                "    SSLStaplingFakeTryLater off",
                "    SSLStaplingResponderTimeout 3",
            ] if host.stapling else []),
            "</IfModule>",
            "",
            f'Include "{includes}/pre_virtualhost_global.conf"',
            f'Include "{includes}/pre_virtualhost_2.conf"',
            "",
            *vhost_lines,
            f'Include "{includes}/post_virtualhost_global.conf"',
            f'Include "{includes}/post_virtualhost_2.conf"',
            "",
        ]
    )
    editable = "# Global directives added here survive cPanel's regeneration of httpd.conf.\n"
    for name in ("pre_main_global", "pre_main_2", "pre_virtualhost_global", "pre_virtualhost_2",
                 "post_virtualhost_global", "post_virtualhost_2"):
        tree.files[f"conf/includes/{name}.conf"] = editable
    return tree
