"""scripts/pack_device.sh and scripts/device_checks.sh, the one command for a lent GPU machine,
run here in their CPU mode (DEVICE_CHECKS_CPU=1): the wheels they carry install into a bare
folder and every step runs and writes its records. On a GPU the same steps run at full length."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sam2")
pytest.importorskip("transformers")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[1]


def test_device_checks_run_end_to_end_on_the_cpu(tmp_path):
    env = {
        **os.environ,
        "DEVICE_CARRY": str(tmp_path / "carry"),
        "DEVICE_WORK": str(tmp_path / "work"),
        "OUT": str(tmp_path / "out"),
        "PYTHON": sys.executable,
        "DEVICE_CHECKS_CPU": "1",
    }
    subprocess.run(["bash", "scripts/pack_device.sh"], cwd=REPO, env=env, check=True)
    wheels = sorted(p.name.split("-")[0] for p in (tmp_path / "carry" / "wheels").glob("*.whl"))
    assert wheels == [
        "antlr4_python3_runtime",
        "hydra_core",
        "iopath",
        "omegaconf",
        "sam2",
        "timm",
        "transformers",
    ]
    run = subprocess.run(
        ["bash", "scripts/device_checks.sh"], cwd=REPO, env=env, capture_output=True, text=True
    )
    summary = (tmp_path / "out" / "summary.txt").read_text()
    assert run.returncode == 0, summary + run.stdout[-3000:] + run.stderr[-3000:]
    assert "every check passed" in summary and "FAILED" not in summary
    # sam2 came from the carried wheels, not from this environment
    assert (tmp_path / "work" / "site" / "sam2" / "configs").is_dir()
    for name in ("sam2_fp32.json", "edgetam_fp32.json", "protonet_s.json"):
        records = json.loads((tmp_path / "out" / name).read_text())
        assert records, name
    assert "needs a CUDA GPU" in (tmp_path / "out" / "parity.log").read_text()
    assert "EdgeTAM image encoder: repvit" in summary  # as published (timm and torchvision here)
