#!/usr/bin/env bash
# Fresh CPU machine to a finished training run in about a minute:
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
export NUM_LAYERS=${NUM_LAYERS:-4} MODEL_DIM=${MODEL_DIM:-128} NUM_HEADS=${NUM_HEADS:-4} NUM_KV_HEADS=${NUM_KV_HEADS:-2}
export ROPE_DIMS=${ROPE_DIMS:-16} XSA_LAST_N=${XSA_LAST_N:-2} VE_LAYERS=${VE_LAYERS:-2,3} VE_DIM=${VE_DIM:-64}
export BIGRAM_VOCAB_SIZE=${BIGRAM_VOCAB_SIZE:-512} BIGRAM_DIM=${BIGRAM_DIM:-64}
export TRAIN_SEQ_LEN=${TRAIN_SEQ_LEN:-256} EVAL_SEQ_LEN=${EVAL_SEQ_LEN:-256} EVAL_STRIDE=${EVAL_STRIDE:-128}
export TRAIN_BATCH_TOKENS=${TRAIN_BATCH_TOKENS:-8192} ITERATIONS=${ITERATIONS:-50} WARMDOWN_ITERS=${WARMDOWN_ITERS:-20}
export WARMUP_STEPS=${WARMUP_STEPS:-0} VAL_LOSS_EVERY=${VAL_LOSS_EVERY:-25} EMA_DECAY=${EMA_DECAY:-0.9} TRAIN_LOG_EVERY=${TRAIN_LOG_EVERY:-10}
export MAX_WALLCLOCK_SECONDS=${MAX_WALLCLOCK_SECONDS:-0} MATRIX_LR=${MATRIX_LR:-0.05} SCALAR_LR=${SCALAR_LR:-0.05}
export MLP_ACTIVATION=${MLP_ACTIVATION:-asqu}
export RUN_ID=${RUN_ID:-quickstart_${MLP_ACTIVATION}_$(date +%Y%m%d-%H%M%S)}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
"$PY" -m torch.distributed.run --standalone --nproc_per_node=2 train_gpt.py
echo "quickstart: done; the full log is logs/${RUN_ID}.txt"
