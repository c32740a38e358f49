"""Where a model named on the command line or in a launch file lives (no ROS needed).

``model:=models/protonet-s`` under ``ros2 launch`` runs in whatever directory the user launched
from, where ``models/`` usually is not. So a model that is not a folder relative to the working
directory (or an absolute one) is looked up by name in the places the package's models are
installed: the checkout the package runs from, and the ROS share folder
(``share/vos_ros/models``, where ``colcon build`` installs them). ``protonet-s`` and
``models/protonet-s`` name the same model.
"""

from __future__ import annotations

from pathlib import Path

FLOW = "flow"
# The model the node, the evaluator, the benchmarks, the demo and the console use unless told
# otherwise: whichever scores better on video nobody tuned on (README "Models, training and the
# engine"). Since 2026-12-08 models/protonet-s, which runs fused with the flow fallback: 5-fold
# cross-validation over the training sequences 0.734 against the fallback's 0.710 (every fold
# above it), validation 0.664 against 0.568. Found by name in the checkout or the package's
# share folder (model_candidates).
DEFAULT_MODEL = "protonet-s"
MODELS_DIR = "models"
_CHECKOUT = Path(__file__).resolve().parents[2]


def model_roots() -> list[Path]:
    """Folders holding ``models/<name>`` besides the working directory, in search order."""
    roots = [_CHECKOUT]
    try:
        from ament_index_python.packages import get_package_share_directory

        roots.append(Path(get_package_share_directory("vos_ros")))
    except Exception:  # no ament index, or the package is not installed with colcon
        pass
    return roots


def model_candidates(model: str) -> list[Path]:
    """Every folder ``model`` may name, in the order they are tried."""
    given = Path(model).expanduser()
    candidates = [given]
    if not given.is_absolute():
        name = given.parts[1:] if given.parts[:1] == (MODELS_DIR,) else given.parts
        if name:
            candidates += [root / MODELS_DIR / Path(*name) for root in model_roots()]
    unique: list[Path] = []
    for path in candidates:
        if path not in unique:
            unique.append(path)
    return unique


def resolve_model(model: str) -> str:
    """The folder ``model`` names: as given when it exists (or is ``flow``), else the first
    installed ``models/<name>`` of :func:`model_candidates`; unchanged when none exists, so that
    loading it reports the missing folder."""
    if model == FLOW:
        return model
    found = next((path for path in model_candidates(model) if path.is_dir()), None)
    return str(found) if found is not None else model
