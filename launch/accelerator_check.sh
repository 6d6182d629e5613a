#!/usr/bin/env bash
# Accelerator check (launch/accelerator_check.py): parity, bf16/fp32 speed rows,
# a 500-step configs/scenes.py run, JSON + Markdown with MFU; < 8 min on one GPU.
#   launch/accelerator_check.sh --out_dir=/tmp/acc      (add --quick on a CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
exec python -m launch.accelerator_check "$@"
