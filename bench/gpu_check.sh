#!/bin/bash
# Issue 26's device check, as one call of the device tool (about 5 minutes on an H200):
#     bash bench/gpu_check.sh            # writes $OUT/ (default /tmp/gpu-check): device.txt, gpu_profile.md, scale.md
# 1. bench.gpu_profile: phase 1's epoch time and GPU utilisation at N = 10,000 and 30,000, the
#    host-device synchronisations of a profiled epoch (one with per-batch selection), and the
#    training step's ceiling on the same GPU;
# 2. bench.scale: ours against the authors'-style loop (8 DataLoader workers) on the same data,
#    the ratio the goal (≥ 5×) is stated in.
# The device image has torch, timm and scikit-learn but no DVC: both benches run in-process.
set -euo pipefail
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python -c "import torch; print('torch', torch.__version__)"; } \
    | tee "$OUT/device.txt"
python -m bench.gpu_profile --sizes 10000 30000 --out "$OUT/gpu_profile.md"
python -m bench.scale --sizes 10000 30000 --workers 8 | tee "$OUT/scale.md"
