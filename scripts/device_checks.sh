#!/usr/bin/env bash
# Every check that needs a GPU, as one command for a lent device machine (see
# scripts/pack_device.sh, which packs what it needs into .carry/device/ first):
#   1. parity: torch CUDA fp16 and bf16 against fp32, and TensorRT fp16 against torch fp32 where
#      TensorRT is installed (test/test_sam2_cuda.py, test/test_sam2_tensorrt.py,
#      test/test_edgetam_graphs.py), SAM 2.1-tiny and EdgeTAM with seeded random weights (real
#      checkpoints cannot be fetched there either);
#   2. speed at 854x480 with 1 and 3 targets (`vos-ros bench engine`): SAM 2.1-tiny and EdgeTAM
#      (RepViT, as published) on torch CUDA fp32 / fp16 / bf16 (and TensorRT fp16 where
#      installed), protonet-s on torch CUDA fp16.
# Results go to $OUT (the device tool brings that folder back): JSON records, the pytest log and
# summary.txt. About 5 minutes on an H100. Every step runs even when one before it failed; the
# exit status says whether all passed.
#
# DEVICE_CHECKS_CPU=1 runs the same steps on a CPU, shortened, to check the script itself (the
# GPU tests are then skipped and only fp32 runs).
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
OUT="${OUT:-$REPO/out/device}"
WORK="${DEVICE_WORK:-/tmp/vos_device}"
mkdir -p "$OUT" "$WORK"
PY="${PYTHON:-python3}"
status=0
step() { printf '\n==> [%4ds] %s\n' "$SECONDS" "$*" | tee -a "$OUT/summary.txt"; }
check() {  # run a command, log its outcome (first line), keep going
  if "$@"; then echo "ok: ${*:1:6}" | head -n 1 >>"$OUT/summary.txt"
  else echo "FAILED ($?): ${*:1:6}" | head -n 1 >>"$OUT/summary.txt"; status=1; fi
}

CARRY="${DEVICE_CARRY:-$REPO/.carry/device}"  # what scripts/pack_device.sh packed
if [[ -d "$CARRY/wheels" ]]; then
  step "installing the carried wheels (sam2 and its runtime dependencies)"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$WORK/site" "$CARRY"/wheels/*.whl || exit 1
  export PYTHONPATH="$WORK/site:$REPO${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1

step "machine"
{ nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"
  "$PY" -c 'import torch, platform; c = torch.cuda.is_available()
print("python", platform.python_version(), "torch", torch.__version__, "cuda", c,
      torch.cuda.get_device_name() if c else "-")'
  "$PY" -c 'import tensorrt; print("tensorrt", tensorrt.__version__)' 2>/dev/null \
    || echo "tensorrt: not installed"
} | tee -a "$OUT/summary.txt"

if [[ "${DEVICE_CHECKS_CPU:-0}" == 1 ]]; then
  backends=(torch) precisions=(fp32) targets=1 frames=1 warmup=0
else
  backends=(torch-cuda) precisions=(fp32 fp16 bf16) targets=1,3 frames=100 warmup=10
fi
trt=0; "$PY" -c 'import tensorrt' 2>/dev/null && trt=1

step "SAM 2.1-tiny with seeded random weights, installed as fetch-model installs a checkpoint"
check "$PY" -c "import sys; sys.path.insert(0, 'test')
from pathlib import Path; from sam2_testlib import random_checkpoint
random_checkpoint(Path('$WORK/sam2.1_hiera_tiny_random.pt'))"
rm -rf "$WORK/models"
check "$PY" -m vos_ros.cli fetch-model sam2.1-hiera-tiny --quiet \
  --checkpoint "$WORK/sam2.1_hiera_tiny_random.pt" --out "$WORK/models"
SAM2="$WORK/models/sam2.1-hiera-tiny"

step "parity (pytest)"
check "$PY" -m pytest -q -p no:cacheprovider -o addopts=-ra test/test_sam2_cuda.py \
  test/test_sam2_tensorrt.py::test_tensorrt_fp16_matches_torch_fp32 \
  test/test_edgetam_graphs.py::test_tensorrt_fp16_matches_torch_fp32 >"$OUT/parity.log" 2>&1
tail -n 15 "$OUT/parity.log"

step "speed: SAM 2.1-tiny, ${backends[*]}, precisions ${precisions[*]}, $targets targets"
for precision in "${precisions[@]}"; do
  check "$PY" -m vos_ros.cli bench engine --model "$SAM2" --backends "${backends[0]}" \
    --sizes 854x480 --targets "$targets" --frames "$frames" --warmup "$warmup" \
    --engine-set "precision=$precision" --json "$OUT/sam2_${precision}.json"
done
if ((trt)); then
  check "$PY" -m vos_ros.cli bench engine --model "$SAM2" --backends tensorrt \
    --sizes 854x480 --targets "$targets" --frames "$frames" --warmup "$warmup" \
    --engine-set "cache_dir=$WORK/trt" --json "$OUT/sam2_tensorrt.json"
fi

step "speed: EdgeTAM with seeded random weights, ${backends[*]}, precisions ${precisions[*]}"
# the published config's RepViT encoder needs timm and torchvision; without them the port's
# default encoder (SAM 2's Hiera) checks the steps instead
encoder=hiera
"$PY" -c 'from vos_ros.trackers.edgetam_library import require_transformers
require_transformers(); import timm' 2>/dev/null && encoder=repvit
echo "EdgeTAM image encoder: $encoder" | tee -a "$OUT/summary.txt"
check "$PY" -c "import sys; sys.path.insert(0, 'test')
from pathlib import Path; from edgetam_testlib import write_random_model
write_random_model(Path('$WORK/edgetam_random'), '$encoder')"
rm -rf "$WORK/models/edgetam"
check "$PY" -m vos_ros.cli fetch-model edgetam --quiet \
  --checkpoint "$WORK/edgetam_random/model.safetensors" --out "$WORK/models"
for precision in "${precisions[@]}"; do
  check "$PY" -m vos_ros.cli bench engine --model "$WORK/models/edgetam" \
    --backends "${backends[0]}" --sizes 854x480 --targets "$targets" --frames "$frames" \
    --warmup "$warmup" --engine-set "precision=$precision" --json "$OUT/edgetam_${precision}.json"
done
if ((trt)); then
  check "$PY" -m vos_ros.cli bench engine --model "$WORK/models/edgetam" --backends tensorrt \
    --sizes 854x480 --targets "$targets" --frames "$frames" --warmup "$warmup" \
    --engine-set "cache_dir=$WORK/trt" --json "$OUT/edgetam_tensorrt.json"
fi

step "speed: protonet-s, ${backends[*]}"
check "$PY" -m vos_ros.cli bench engine --model models/protonet-s --backends "${backends[0]}" \
  --sizes 854x480 --targets "$targets" --frames "$frames" --warmup "$warmup" \
  --json "$OUT/protonet_s.json"

step "done: $([[ $status == 0 ]] && echo 'every check passed' || echo 'some checks FAILED')"
exit "$status"
