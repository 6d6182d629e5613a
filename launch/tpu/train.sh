#!/bin/bash
# Training on a Cloud TPU VM pod slice: the same command on every worker.
# JAX detects the TPU pod (jax.distributed.initialize auto-detection); each
# worker reads only its shard of every global batch.
#
#   TPU_NAME=my-v4-32 ZONE=us-central2-b CONFIG=configs/sen1_2.py \
#   WORKDIR=/mnt/shared/runs/sen1_2 \
#   EXTRA_FLAGS="--config.dataset.manual_dir=/mnt/shared/sen1_2 --config.dtype=bfloat16" \
#   bash launch/tpu/train.sh
#
# The repository and the venv must exist at REPO / PYTHON on every worker
# (e.g. set up once with `--worker=all`); WORKDIR must be a filesystem all
# workers share (NFS / Filestore / GCS FUSE mount).
# DRY_RUN=1 prints the gcloud command instead of running it.
set -euo pipefail

: "${TPU_NAME:?set TPU_NAME to the TPU VM name}"
: "${ZONE:?set ZONE to the TPU zone}"
CONFIG="${CONFIG:-configs/vis_nir.py}"
WORKDIR="${WORKDIR:?set WORKDIR to a directory shared by all workers}"
REPO="${REPO:-\$HOME/rrl_jax}"
PYTHON="${PYTHON:-python3}"
EXTRA_FLAGS="${EXTRA_FLAGS:-}"
PROJECT_FLAG=()
if [[ -n "${PROJECT:-}" ]]; then PROJECT_FLAG=(--project="$PROJECT"); fi

REMOTE="cd $REPO && $PYTHON -m launch.main --config=$CONFIG --workdir=$WORKDIR $EXTRA_FLAGS"

if [[ "${DRY_RUN:-0}" == "1" ]]; then
  echo "gcloud compute tpus tpu-vm ssh $TPU_NAME --zone=$ZONE ${PROJECT_FLAG[*]} --worker=all --command=\"$REMOTE\""
  echo "REMOTE: $REMOTE"
  exit 0
fi
gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" "${PROJECT_FLAG[@]}" \
  --worker=all --command="$REMOTE"
