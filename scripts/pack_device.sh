#!/usr/bin/env bash
# Pack what scripts/device_checks.sh needs on a lent GPU machine into .carry/device/ (git-ignored;
# the device tool copies only the checkout, plus the folders its `carry` names).
#
# That machine has Python 3.12 with CUDA PyTorch, ONNX Runtime, OpenCV, pytest and hypothesis,
# timm and torchvision, and no network. It lacks the official sam2 package and its runtime
# dependencies, and has an older transformers: they travel as wheels. All of them are pure
# Python (sam2 is built here without its CUDA extension, as scripts/setup.sh installs it), so
# wheels built here install there.
#   bash scripts/pack_device.sh            # then, with the device tool:
#   run(command="bash scripts/device_checks.sh", carry=[".carry/device"], timeout_s=540)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${VOS_VENV:-$REPO/.venv}/bin/python"
CARRY="${DEVICE_CARRY:-$REPO/.carry/device}"  # DEVICE_CARRY: elsewhere (tests)
OUT="$CARRY/wheels"
[[ -x "$PY" ]] || { echo "pack_device.sh: run scripts/setup.sh first (no $PY)" >&2; exit 1; }

rm -rf "$OUT" && mkdir -p "$OUT"
# The versions installed here, so the device runs what the tests here ran.
pins=()
for name in hydra-core omegaconf antlr4-python3-runtime iopath; do
  pins+=("$name==$("$PY" -c "import importlib.metadata as m; print(m.version('$name'))")")
done
"$PY" -m pip wheel -q --no-deps -w "$OUT" "${pins[@]}"
SAM2_BUILD_CUDA=0 "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$OUT" "sam2==1.1.0"
# EdgeTAM's model code and timm at the versions tested here (that image has an older
# transformers; its own torchvision, which timm imports, matches its torch)
"$PY" -m pip download -q --no-deps -d "$OUT" -r "$REPO/requirements-edgetam.txt" \
  -r "$REPO/requirements-edgetam-encoder.txt"
for wheel in "$OUT"/*.whl; do
  case "$(basename "$wheel")" in
    *-none-any.whl) ;;
    *) echo "pack_device.sh: $wheel is not pure Python; it would not install there" >&2; exit 1 ;;
  esac
done
du -sh "$OUT"
ls "$OUT"
