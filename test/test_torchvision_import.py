"""vos_ros.trackers.torchvision_import: torchvision's Python part imports whether or not its
compiled operators load for this torch, and its operators stay unavailable where they did not.
Each case runs in a fresh interpreter: an import is once per process."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("torch")


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_torchvision_imports_and_its_missing_operators_say_so():
    import importlib.util

    if importlib.util.find_spec("torchvision") is None:
        pytest.skip("torchvision is not installed (scripts/setup.sh installs it)")
    plain = _python("import torchvision")
    run = _python(
        "from vos_ros.trackers import torchvision_import as t\n"
        "t.import_torchvision(); t.import_torchvision()\n"
        "import torch, torchvision\n"
        "import torchvision.ops.misc  # what timm imports\n"
        "print(len(t._declared), torchvision.extension._has_ops())\n"
        "try:\n"
        "    torchvision.ops.nms(torch.zeros(1, 4), torch.zeros(1), 0.5)\n"
        "except RuntimeError as exc:\n"
        "    print('nms:', exc)\n"
    )
    assert run.returncode == 0, run.stderr[-2000:]
    declared, has_ops = run.stdout.splitlines()[0].split()
    if plain.returncode == 0:  # a torchvision built for this torch: nothing to declare
        assert (declared, has_ops) == ("0", "True")
    else:  # PyPI's CUDA build beside a CPU torch: the import stops on nms without the module
        assert "torchvision::nms" in plain.stderr
        assert (declared, has_ops) == ("1", "False")
        assert "nms: Couldn't load custom C++ ops" in run.stdout


def test_other_import_errors_are_not_hidden():
    run = _python(
        "import sys; sys.modules['torchvision'] = None\n"
        "from vos_ros.trackers.torchvision_import import import_torchvision\n"
        "try:\n"
        "    import_torchvision()\n"
        "except ImportError as exc:\n"
        "    print('ImportError', exc)\n"
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.startswith("ImportError")
