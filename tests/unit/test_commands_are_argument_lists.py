"""Every command the collection runs is an argument list: no shell, no command put together from strings.

Read from the source (Python's ast, the YAML of roles and playbooks), so a new call site that breaks the rule
fails here before it reaches a host.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

COLLECTION = Path(__file__).resolve().parents[2]
PYTHON_FILES = sorted((COLLECTION / "plugins").rglob("*.py"))
YAML_FILES = sorted(list((COLLECTION / "roles").rglob("*.yml")) + list((COLLECTION / "playbooks").rglob("*.yml")))
# Calls that run a command: the stdlib's and AnsibleModule's.
RUNNERS = {"run", "Popen", "call", "check_call", "check_output", "run_command"}
SHELL_RUNNERS = {"system", "popen", "getoutput", "getstatusoutput", "spawnl", "spawnlp"}
SHELL_MODULES = {"shell", "ansible.builtin.shell", "raw", "ansible.builtin.raw", "script", "ansible.builtin.script"}
COMMAND_MODULES = {"command", "ansible.builtin.command"}


def _called_name(call: ast.Call) -> str | None:
    function = call.func
    if isinstance(function, ast.Attribute):
        return function.attr
    if isinstance(function, ast.Name):
        return function.id
    return None


def _built_from_strings(node: ast.AST) -> bool:
    """A literal string, an f-string, ``%`` or ``+`` on strings, ``.format()``, ``" ".join()``: a command line.
    ``ctl + ["-t"]`` is a list put together, which is what the rule wants."""
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Mod):
            return _built_from_strings(node.left)
        return isinstance(node.op, ast.Add) and (_built_from_strings(node.left) or _built_from_strings(node.right))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr == "format" or (node.func.attr == "join" and _built_from_strings(node.func.value))
    return False


def offences(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call):
            continue
        name = _called_name(node)
        where = f"{path.relative_to(COLLECTION)}:{node.lineno}"
        for keyword in node.keywords:
            if keyword.arg in ("shell", "use_unsafe_shell") and not (
                    isinstance(keyword.value, ast.Constant) and keyword.value.value is False):
                found.append(f"{where}: {name}(..., {keyword.arg}=...)")
        if name in SHELL_RUNNERS and isinstance(node.func, ast.Attribute) \
                and getattr(node.func.value, "id", None) in ("os", "subprocess", "commands"):
            found.append(f"{where}: {node.func.value.id}.{name} runs a shell")
        if name in RUNNERS and node.args and _built_from_strings(node.args[0]):
            found.append(f"{where}: {name} given a command string")
    return found


def tasks_of(document) -> list[dict]:
    """Every task of a playbook, task file or handler file, blocks and plays opened."""
    found, pending = [], list(document or [])
    while pending:
        item = pending.pop()
        if not isinstance(item, dict):
            continue
        found.append(item)
        for key in ("tasks", "pre_tasks", "post_tasks", "handlers", "block", "rescue", "always"):
            pending.extend(item.get(key) or [])
    return found


@pytest.mark.parametrize("path", PYTHON_FILES, ids=lambda path: str(path.relative_to(COLLECTION)))
def test_python_runs_no_shell_and_no_command_string(path):
    assert offences(path) == []


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda path: str(path.relative_to(COLLECTION)))
def test_roles_and_playbooks_run_commands_as_argv(path):
    document = yaml.safe_load(path.read_text())
    if not isinstance(document, list):
        return  # defaults, vars, argument specs: no tasks in them
    for task in tasks_of(document):
        assert not SHELL_MODULES & set(task), f"{path}: {task.get('name')} uses a shell"
        for module in COMMAND_MODULES & set(task):
            arguments = task[module]
            assert isinstance(arguments, dict) and "argv" in arguments and "cmd" not in arguments, \
                f"{path}: {task.get('name')} gives {module} a command string instead of argv"


def test_the_rule_catches_what_it_is_for(tmp_path):
    # The checks above pass vacuously if the detection is broken: show that each kind of offence is found.
    bad = tmp_path / "bad.py"
    bad.write_text("import os, subprocess\n"
                   "subprocess.run('ls ' + path)\n"
                   "subprocess.run(['ls'], shell=True)\n"
                   "module.run_command(f'{ctl} -t')\n"
                   "module.run_command(['a'], use_unsafe_shell=True)\n"
                   "os.system('reboot')\n"
                   "subprocess.run(['ls', path])\n"
                   "subprocess.run(ctl + ['-t'])\n")
    global COLLECTION  # pylint: disable=global-statement
    saved, COLLECTION = COLLECTION, tmp_path
    try:
        found = offences(bad)
    finally:
        COLLECTION = saved
    assert [line.split(":")[1] for line in found] == ["2", "3", "4", "5", "6"], found
    assert len(tasks_of([{"hosts": "all", "tasks": [{"block": [{"ansible.builtin.shell": "x"}]}]}])) == 3
