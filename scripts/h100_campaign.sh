#!/usr/bin/env bash
# The relu2 / leaky2 / asqu A/B at record scale on 8xH100, in one command:
#
#   bash scripts/h100_campaign.sh [OUT]             # default OUT: results/h100-ab
#   DRY_RUN=1 bash scripts/h100_campaign.sh         # print the commands, run nothing
#
# Steps (the first failing one stops the campaign, with its exit status):
#   1. python3 scripts/gpu_preflight.py              GPUs, kernels, compile: stop here if anything is wrong
#   2. python3 data/cached_challenge_fineweb.py      the published sp1024 data (val + TRAIN_SHARDS train shards)
#   3. python3 tools/sweep.py                        relu2, leaky2, asqu x seeds 1337, 42, 2025, 600 s each,
#                                                    torchrun --nproc_per_node=8, one run at a time, resumable
#   4. python3 tools/summarize.py                    OUT/summary.txt and OUT/summary.json
#   5. python3 tools/compare.py                      OUT/compare_asqu_vs_relu2.txt, _asqu_vs_leaky2, _leaky2_vs_relu2
#   6. python3 tools/plots.py                        OUT/plots/*.png (beta histograms from the asqu runs' final models)
#
# Nine 600 s runs plus evaluation and start-up: about two hours on one 8xH100 node. Interrupted? Run the same
# command again: finished runs are skipped (tools/sweep.py resumes), the report is rebuilt from all logs.
#
# Settings (environment): PYTHON (python3), ACTIVATIONS (relu2,leaky2,asqu; the first is the baseline),
# SEEDS (1337,42,2025), NPROC (8), WALLCLOCK (600), TRAIN_SHARDS (80), VAL_LOSS_EVERY (unset: the record's
# default), SKIP_PREFLIGHT=1 and SKIP_DOWNLOAD=1 to leave those steps out, DRY_RUN=1 to print only.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

OUT=${1:-${OUT:-results/h100-ab}}
PYTHON=${PYTHON:-python3}
ACTIVATIONS=${ACTIVATIONS:-relu2,leaky2,asqu}
SEEDS=${SEEDS:-1337,42,2025}
NPROC=${NPROC:-8}
WALLCLOCK=${WALLCLOCK:-600}
TRAIN_SHARDS=${TRAIN_SHARDS:-80}
DRY_RUN=${DRY_RUN:-0}

# The arguments as one line a shell reads back the same (plain words left as they are).
quote() {
    local out="" arg q="'"
    for arg in "$@"; do
        if [[ $arg =~ ^[A-Za-z0-9_./=,:@%+-]+$ ]]; then
            out+="$arg "
        else
            out+="'${arg//$q/$q\\$q$q}' "
        fi
    done
    printf '%s' "${out% }"
}

# Print a command (one line, prefixed with "+ "), then run it unless DRY_RUN=1.
run() {
    printf '+ %s\n' "$(quote "$@")"
    if [[ $DRY_RUN == 1 ]]; then
        return 0
    fi
    "$@"
}

# Like run, with stdout going to a file.
run_to() {
    local target=$1
    shift
    printf '+ %s > %s\n' "$(quote "$@")" "$(quote "$target")"
    if [[ $DRY_RUN == 1 ]]; then
        return 0
    fi
    "$@" >"$target"
    cat "$target"
}

step() {
    printf '\n=== h100_campaign: %s\n' "$*"
}

IFS=, read -r -a ACTS <<<"$ACTIVATIONS"
if [[ ${#ACTS[@]} -lt 2 ]]; then
    echo "h100_campaign: ACTIVATIONS needs at least two activations, got '$ACTIVATIONS'" >&2
    exit 2
fi

if [[ ${SKIP_PREFLIGHT:-0} != 1 ]]; then
    step "1/6 preflight"
    run "$PYTHON" scripts/gpu_preflight.py || {
        status=$?
        echo "h100_campaign: preflight failed (exit $status); nothing was trained. Fix what it reports first." >&2
        exit "$status"
    }
fi

if [[ ${SKIP_DOWNLOAD:-0} != 1 ]]; then
    step "2/6 data (published sp1024: val + $TRAIN_SHARDS train shards)"
    run "$PYTHON" data/cached_challenge_fineweb.py --variant sp1024 --train-shards "$TRAIN_SHARDS"
fi

step "3/6 sweep: $ACTIVATIONS x seeds $SEEDS, ${WALLCLOCK} s, $NPROC processes per run -> $OUT"
sweep=("$PYTHON" tools/sweep.py --activations "$ACTIVATIONS" --seeds "$SEEDS" --out "$OUT"
       --nproc "$NPROC" --wallclock "$WALLCLOCK" --no-plots)
if [[ -n ${VAL_LOSS_EVERY:-} ]]; then
    sweep+=(--env "VAL_LOSS_EVERY=$VAL_LOSS_EVERY")
fi
run "${sweep[@]}"

if [[ $DRY_RUN != 1 ]]; then
    mkdir -p "$OUT"
fi

step "4/6 summary"
run_to "$OUT/summary.txt" "$PYTHON" tools/summarize.py "$OUT"
run_to "$OUT/summary.json" "$PYTHON" tools/summarize.py --json "$OUT"

step "5/6 comparisons (record criterion: 0.005 nats, one-sided Welch p < 0.01)"
# Every later activation against every earlier one: with the default order, asqu vs relu2,
# asqu vs leaky2 and leaky2 vs relu2.
for ((j = ${#ACTS[@]} - 1; j >= 1; j--)); do
    for ((i = 0; i < j; i++)); do
        a=${ACTS[i]} b=${ACTS[j]}
        run_to "$OUT/compare_${b}_vs_${a}.txt" "$PYTHON" tools/compare.py "$a" "$b" "$OUT"
    done
done

step "6/6 plots"
plots=("$PYTHON" tools/plots.py "$OUT" --out "$OUT/plots")
if [[ ,$ACTIVATIONS, == *,asqu,* ]]; then
    IFS=, read -r -a SEED_LIST <<<"$SEEDS"
    for seed in "${SEED_LIST[@]}"; do
        run_dir="$OUT/asqu_seed$seed"  # plots.py reads the final model(s) under the run's runs/*/
        if [[ $DRY_RUN == 1 || -d $run_dir ]]; then
            plots+=(--state-dict "$run_dir")
        fi
    done
fi
run "${plots[@]}"

step "done: $OUT (summary.txt, summary.json, compare_*.txt, plots/, one folder per run)"
