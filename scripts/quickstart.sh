#!/usr/bin/env bash
# Fresh CPU machine to a finished training run in about 3 minutes on 2 cores (most of it the install):
# installs what is needed, builds the offline sample dataset if absent, then trains a small
# configuration of the record's architecture with 2 CPU processes under torchrun.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
bash scripts/setup_cpu.sh
if ! ls data/datasets/sample_sp1024/fineweb_train_*.bin >/dev/null 2>&1; then
  "$PY" data/build_sample.py
fi
export DATA_PATH=./data/datasets/sample_sp1024 TOKENIZER_PATH=./data/tokenizers/sample_1024_bpe.model
# the small CPU model (configs/cpu_small.env); a variable already set in the environment wins
while IFS='=' read -r name value; do
  [[ -z $name || $name == \#* || -n ${!name:-} ]] || export "$name=$value"
done <configs/cpu_small.env
export EVAL_STRIDE=${EVAL_STRIDE:-128} ITERATIONS=${ITERATIONS:-50} WARMDOWN_ITERS=${WARMDOWN_ITERS:-20}
export WARMUP_STEPS=${WARMUP_STEPS:-0} VAL_LOSS_EVERY=${VAL_LOSS_EVERY:-25} TRAIN_LOG_EVERY=${TRAIN_LOG_EVERY:-10}
export MAX_WALLCLOCK_SECONDS=${MAX_WALLCLOCK_SECONDS:-0}
export MLP_ACTIVATION=${MLP_ACTIVATION:-asqu}
export RUN_ID=${RUN_ID:-quickstart_${MLP_ACTIVATION}_$(date +%Y%m%d-%H%M%S)}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
"$PY" -m torch.distributed.run --standalone --nproc_per_node=2 train_gpt.py
echo "quickstart: done; the full log is logs/${RUN_ID}.txt"
