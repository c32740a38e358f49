"""Security checks over the project's own source: no unpickling of files, no shell started with
data from a message or parameter, no unsafe YAML, no eval/exec.

The scan parses every Python file (so comments and docstrings that *mention* an API do not count)
and looks at each call. Test files are scanned too: tests run on developer machines and CI.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ["vos_ros", "launch", "scripts", "test", "setup.py"]

# Calls that run a shell or unpickle: never allowed, whatever their arguments.
FORBIDDEN_CALLS = {
    "os.system": "starts a shell",
    "os.popen": "starts a shell",
    "subprocess.getoutput": "starts a shell",
    "subprocess.getstatusoutput": "starts a shell",
    "pickle.load": "unpickles (runs code from the file)",
    "pickle.loads": "unpickles (runs code from the data)",
    "pickle.Unpickler": "unpickles",
    "marshal.load": "loads code objects",
    "marshal.loads": "loads code objects",
    "shelve.open": "unpickles",
    "dill.load": "unpickles",
    "dill.loads": "unpickles",
    "joblib.load": "unpickles",
    "yaml.unsafe_load": "constructs arbitrary objects",
    "yaml.full_load": "constructs arbitrary objects",
    "eval": "runs text as code",
    "exec": "runs text as code",
}
FORBIDDEN_IMPORTS = {"pickle", "cPickle", "dill", "shelve", "marshal", "joblib"}


def _dotted(node: ast.AST) -> str:
    """``a.b.c`` for a Name/Attribute chain, else ''."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _keyword(call: ast.Call, name: str) -> ast.AST | None:
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value
    return None


def _is_const(node: ast.AST | None, value: object) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def problems_in(source: str, filename: str = "<source>") -> list[str]:
    """Every forbidden pattern in ``source``, as ``file:line: what``."""
    tree = ast.parse(source, filename)
    aliases = {"np": "numpy", "sp": "subprocess"}
    found: list[str] = []

    def report(node: ast.AST, text: str) -> None:
        found.append(f"{filename}:{node.lineno}: {text}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in FORBIDDEN_IMPORTS:
                    report(node, f"imports {alias.name}")
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.split(".")[0] in FORBIDDEN_IMPORTS
        ):
            report(node, f"imports from {node.module}")
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        head, _, rest = name.partition(".")
        name = f"{aliases.get(head, head)}.{rest}" if rest else name
        if name in FORBIDDEN_CALLS:
            report(node, f"{name}() {FORBIDDEN_CALLS[name]}")
        if _keyword(node, "shell") is not None and not _is_const(_keyword(node, "shell"), False):
            report(node, f"{name}(shell=...) starts a shell")
        if name.startswith("subprocess.") and node.args and isinstance(node.args[0], ast.JoinedStr):
            report(node, f"{name}() with a command built from text")
        if name == "torch.load" and not _is_const(_keyword(node, "weights_only"), True):
            report(node, "torch.load() without weights_only=True unpickles arbitrary objects")
        flag = _keyword(node, "allow_pickle")
        if name == "numpy.load" and flag is not None and not _is_const(flag, False):
            report(node, "numpy.load(allow_pickle=...) may unpickle")
        if name == "yaml.load":
            loader = _dotted(_keyword(node, "Loader") or ast.Constant(None))
            if len(node.args) > 1:
                loader = _dotted(node.args[1])
            if not loader.endswith(("SafeLoader", "CSafeLoader")):
                report(node, "yaml.load() without SafeLoader constructs arbitrary objects")
    return found


def _python_files() -> list[Path]:
    files: list[Path] = []
    for entry in SCANNED:
        path = ROOT / entry
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(p for p in path.rglob("*.py") if "__pycache__" not in p.parts)
    return sorted(files)


def test_the_source_tree_has_no_unpickling_shells_or_eval():
    files = _python_files()
    assert len(files) > 50  # the scan really sees the project
    found = [p for f in files for p in problems_in(f.read_text(), str(f.relative_to(ROOT)))]
    assert not found, "\n".join(found)


def test_shell_scripts_do_not_eval_input():
    for script in (ROOT / "scripts").glob("*.sh"):
        for number, line in enumerate(script.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            assert "eval " not in code and "eval\t" not in code, f"{script.name}:{number}"


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("import pickle", "imports pickle"),
        ("from pickle import loads", "imports from pickle"),
        ("import os\nos.system('ls ' + name)", "os.system() starts a shell"),
        ("import subprocess\nsubprocess.run(cmd, shell=True)", "shell=...) starts a shell"),
        ("import subprocess as sp\nsp.call(f'ls {x}')", "command built from text"),
        ("import torch\ntorch.load(path)", "without weights_only=True"),
        ("import torch\ntorch.load(path, weights_only=False)", "without weights_only=True"),
        ("import numpy as np\nnp.load(path, allow_pickle=True)", "may unpickle"),
        ("import yaml\nyaml.load(text)", "without SafeLoader"),
        ("import yaml\nyaml.load(text, Loader=yaml.FullLoader)", "without SafeLoader"),
        ("eval(text)", "runs text as code"),
    ],
)
def test_the_scanner_finds_each_pattern(snippet, expected):
    found = problems_in(snippet)
    assert found and expected in found[0], found


@pytest.mark.parametrize(
    "snippet",
    [
        "import torch\ntorch.load(path, map_location='cpu', weights_only=True)",
        "import numpy as np\nnp.load(path)",
        "import yaml\nyaml.safe_load(text)\nyaml.load(text, Loader=yaml.SafeLoader)",
        "import subprocess\nsubprocess.Popen(['vos-ros', name], shell=False)",
        "model.eval()\n# os.system('x') in a comment\n'''pickle.load in a docstring'''",
    ],
)
def test_the_scanner_accepts_safe_uses(snippet):
    assert problems_in(snippet) == []


def test_model_files_are_verified_by_default():
    """The node never turns checksum verification off: it builds its engine with the default."""
    from vos_ros.engine import EngineConfig

    assert EngineConfig().verify_checksums is True
    source = (ROOT / "vos_ros" / "ros" / "node.py").read_text()
    assert "verify_checksums" not in source


@pytest.mark.parametrize(
    ("model", "root", "allowed"),
    [
        ("flow", "/srv/models", True),
        ("/srv/models/protonet-s", "/srv/models", True),
        ("/srv/models/../secrets/m", "/srv/models", False),
        ("/srv/models-evil/m", "/srv/models", False),
        ("/etc", "/srv/models", False),
        ("/anything", "", True),
    ],
)
def test_model_root_confines_the_model_parameter(model, root, allowed):
    from vos_ros.ros.params import NodeConfig, model_path_problem

    assert (model_path_problem(model, root) is None) == allowed
    if not allowed:
        with pytest.raises(ValueError, match=r"parameter 'model'.*outside model_root"):
            NodeConfig.from_values({"model": model, "model_root": root})


def test_model_root_follows_symbolic_links(tmp_path):
    from vos_ros.ros.params import model_path_problem

    root = tmp_path / "models"
    root.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (root / "link").symlink_to(tmp_path / "elsewhere")
    assert model_path_problem(str(root / "link"), str(root)) is not None
    assert model_path_problem(str(root / "real"), str(root)) is None
