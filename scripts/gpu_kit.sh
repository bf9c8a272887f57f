#!/usr/bin/env bash
# The GPU run kit: on a machine with an NVIDIA GPU, a CUDA toolkit (NVRTC) and Python with
# PyTorch, no network and no Rust, to which `cargo xtask gpu-kit` copied the release binary
# (`unmix`, every backend compiled in), `configs/`, `datasets/`, `docs/reference/` and this
# script. One command:
#
#     bash scripts/gpu_kit.sh            # on the GPU: cuda, full width, batches 256 and 512
#     bash scripts/gpu_kit.sh --cpu      # the same steps, CPU-sized (what CI runs)
#
# 1. `unmix check-backend`: ResNet-18's forward on the device against the CPU backend, and every
#    fashion_mnist method trained 5 steps on one batch with the CPU's losses.
# 2. Per method (MoCo, SimCLR, BYOL, SwAV, each with and without Un-Mix) and batch: our step
#    (`unmix bench --config`) and the same step in PyTorch eager (`docs/reference/bench_step.py`
#    on the inputs `unmix parity-step` records), images/s and peak device memory
#    (nvidia-smi's used memory, sampled every 100 ms, minus what was in use before), and the ratio.
# 3. The ResNet-18 step in f32, bf16 and f16 (`unmix bench --dtype`: everything in 16 bits, as
#    Burn 0.22 has no autocast), images/s against f32.
# 4. A real pre-training of the embedded set (`configs/fashion_mnist/moco_unmix.toml`) at full
#    width, its kNN accuracy and its time.
# Everything is written to $OUT (default gpu-kit-results/), the table also to stdout; every
# command, its output and its wall time to $OUT/log.txt. A step that fails or runs out of time is
# written in its row and the kit goes on; it exits non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."

DEVICE=cuda WIDTH=64 BATCHES="256 512" STEPS=20 EPOCHS=16 CROP=32 TRAIN_SETS=()
if [[ "${1:-}" == "--cpu" ]]; then
    DEVICE=cpu WIDTH=4 BATCHES="16" STEPS=2 EPOCHS=1
    TRAIN_SETS=(--set data.train_per_class=20 --set data.test_per_class=10)
fi
# Overrides, for a machine lent by the minute: the batches, the timed steps and the pre-training's
# epochs; and a time budget in seconds (0 = none). With a budget, each command runs under
# `timeout` with what is left, a step row that would eat into the pre-training's reserve
# (KIT_RESERVE_S, default 150 s) is written as skipped, and the pre-training stops at the budget
# (its finished epochs stay in its run directory).
BATCHES="${KIT_BATCHES:-$BATCHES}" STEPS="${KIT_STEPS:-$STEPS}" EPOCHS="${KIT_EPOCHS:-$EPOCHS}"
BUDGET="${KIT_BUDGET_S:-0}" RESERVE="${KIT_RESERVE_S:-150}"
BIN="${UNMIX_BIN:-./unmix}"
OUT="${OUT:-gpu-kit-results}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$OUT"
[[ -x "$BIN" ]] || { echo "error: $BIN: no unmix binary (set UNMIX_BIN)" >&2; exit 2; }
START=$(date +%s)
FAILED=0

# Seconds left of the budget (a large number without one).
left() {
    if [[ "$BUDGET" == 0 ]]; then echo 999999; else echo $(( BUDGET - ($(date +%s) - START) )); fi
}

# Runs "$@" under the budget, its stdout to $OUT/last.txt and its stderr to $OUT/last.err (both
# also appended to $OUT/log.txt with the command and its wall time). Returns the command's status.
run_logged() {
    local t0 status budget
    t0=$(date +%s) budget=$(left)
    echo "\$ $*" >> "$OUT/log.txt"
    # `timeout 0` would mean no limit.
    if (( budget <= 0 )); then echo "# not run: no time left" >> "$OUT/log.txt"; return 124; fi
    timeout "$budget" "$@" > "$OUT/last.txt" 2> "$OUT/last.err"
    status=$?
    cat "$OUT/last.txt" "$OUT/last.err" >> "$OUT/log.txt"
    echo "# exit $status after $(( $(date +%s) - t0 )) s" >> "$OUT/log.txt"
    return $status
}

# Whether a row would eat into the pre-training's reserve (never without a budget).
over_budget() {
    [[ "$BUDGET" != 0 ]] && (( $(left) < RESERVE ))
}

# Column $1 (awk's count: the first is empty) of the last table row of $OUT/last.txt, trimmed.
column() {
    tail -1 "$OUT/last.txt" | awk -F'|' -v c="$1" '{gsub(/ /, "", $c); print $c}'
}

# Why a command failed, in a few words for a table cell.
why() {
    if [[ $1 == 124 ]]; then echo "out of time"; else echo "failed (exit $1, $OUT/log.txt)"; fi
}

# CUDA at run time (README, "CUDA"): the toolkit's headers for NVRTC (CUDA_PATH, else cubecl
# looks in /usr/local/cuda) and libnvrtc / libcuda where the loader finds them. Where the loader
# does not know NVRTC, the toolkit's library folders are added to LD_LIBRARY_PATH.
if [[ "$DEVICE" == cuda ]]; then
    if [[ -z "${CUDA_PATH:-}" ]] && command -v nvcc >/dev/null; then
        CUDA_PATH=$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")
        export CUDA_PATH
    fi
    if ! ldconfig -p 2>/dev/null | grep -q libnvrtc; then
        for dir in "${CUDA_PATH:-/usr/local/cuda}/lib64" "${CUDA_PATH:-/usr/local/cuda}/targets/x86_64-linux/lib"; do
            [[ -d "$dir" ]] && LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        done
        export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}"
    fi
fi

have_torch=no
if "$PYTHON" -c "import torch" 2>/dev/null; then have_torch=yes; fi
have_smi=no
if [[ "$DEVICE" == cuda ]] && command -v nvidia-smi >/dev/null; then have_smi=yes; fi

{
    echo "# unmix GPU run kit ($(date -u +%Y-%m-%dT%H:%MZ), device $DEVICE)"
    echo
    if [[ $have_smi == yes ]]; then
        echo "GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader)"
    else
        echo "GPU: none ($DEVICE mode)"
    fi
    if [[ $have_torch == yes ]]; then
        echo "PyTorch: $("$PYTHON" -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)')"
    else
        echo "PyTorch: not installed (its rows are left out)"
    fi
    if [[ "$DEVICE" == cuda ]]; then
        echo
        echo "CUDA_PATH=${CUDA_PATH:-unset}; LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-unset}"
    fi
    echo
} | tee "$OUT/report.md"

# Peak used device memory (MiB) while "$@" runs (through run_logged), above what was in use
# before; "–" without nvidia-smi. Sets STATUS to the command's exit status.
peak_mib() {
    if [[ $have_smi == no ]]; then
        run_logged "$@"
        STATUS=$?
        PEAK="–"
        return
    fi
    local base smi
    base=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$OUT/smi.txt" &
    smi=$!
    run_logged "$@"
    STATUS=$?
    kill "$smi" 2>/dev/null || true
    wait "$smi" 2>/dev/null || true
    PEAK=$(sort -n "$OUT/smi.txt" | tail -1 | awk -v b="$base" '{print $1 - b}')
}

echo "## 1. Backend check" | tee -a "$OUT/report.md"
run_logged "$BIN" check-backend --device "$DEVICE"
status=$?
cat "$OUT/last.txt" | tee -a "$OUT/report.md"
if [[ $status != 0 ]]; then
    echo "check-backend: $(why $status)" | tee -a "$OUT/report.md"
    tail -20 "$OUT/last.err" | tee -a "$OUT/report.md"
    FAILED=1
fi
echo | tee -a "$OUT/report.md"

echo "## 2. Training step, ResNet-18 width $WIDTH, ${CROP}×${CROP}" | tee -a "$OUT/report.md"
{
    echo
    echo "| method | batch | unmix images/s | unmix peak MiB | PyTorch eager images/s | PyTorch peak MiB | unmix / PyTorch |"
    echo "|---|---|---|---|---|---|---|"
} | tee -a "$OUT/report.md"
# Batches outermost: with a budget, every method at the first batch comes before the second.
for batch in $BATCHES; do
    for name in moco moco_unmix simclr simclr_unmix byol byol_unmix swav swav_unmix; do
        cfg="configs/fashion_mnist/$name.toml"
        if over_budget; then
            echo "| $name | $batch | skipped (time budget) | – | – | – | – |" | tee -a "$OUT/report.md"
            continue
        fi
        sets=(--set "model.backbone.width=$WIDTH" --set "optim.batch_size=$batch"
              --set "data.augmentation.crop_size=$CROP" --set "run.device=\"$DEVICE\"")
        peak_mib "$BIN" bench --device "$DEVICE" --config "$cfg" \
            --width "$WIDTH" --batch "$batch" --steps "$STEPS" --set "data.augmentation.crop_size=$CROP"
        ours_mem=$PEAK
        if [[ $STATUS == 0 ]]; then
            ours=$(column 7)
        else
            ours=$(why $STATUS) ours_mem="–" FAILED=1
        fi
        torch_ips="–" torch_mem="–" ratio="–"
        if [[ $have_torch == yes ]]; then
            if run_logged "$BIN" parity-step --config "$cfg" --out "$OUT/step.safetensors" "${sets[@]}"; then
                peak_mib "$PYTHON" docs/reference/bench_step.py "$OUT/step.safetensors" \
                    --device "$DEVICE" --steps "$STEPS"
                if [[ $STATUS == 0 ]]; then
                    torch_mem=$PEAK
                    torch_ips=$(column 6)
                    ratio=$(awk -v a="$ours" -v b="$torch_ips" 'BEGIN { if (a + 0 > 0 && b > 0) printf "%.2f×", a / b; else print "–" }')
                else
                    torch_ips=$(why $STATUS) FAILED=1
                fi
            else
                torch_ips="record: $(why $?)" FAILED=1
            fi
        fi
        echo "| $name | $batch | $ours | $ours_mem | $torch_ips | $torch_mem | $ratio |" | tee -a "$OUT/report.md"
    done
done
rm -f "$OUT/step.safetensors"
echo | tee -a "$OUT/report.md"

# Mixed precision (issue 14, item 4): Burn 0.22 has no autocast, so this is the supervised-style
# ResNet-18 step with everything in 16 bits (no f32 master copy): an upper bound on the gain.
echo "## 3. The ResNet-18 step in 16 bits, width $WIDTH, batch ${BATCHES%% *}" | tee -a "$OUT/report.md"
{
    echo
    echo "| dtype | s/step | images/s | vs f32 |"
    echo "|---|---|---|---|"
} | tee -a "$OUT/report.md"
f32_ips=""
for dtype in f32 bf16 f16; do
    if over_budget; then
        echo "| $dtype | skipped (time budget) | – | – |" | tee -a "$OUT/report.md"
        continue
    fi
    if run_logged "$BIN" bench --device "$DEVICE" --width "$WIDTH" --batch "${BATCHES%% *}" \
        --steps "$STEPS" --dtype "$dtype"; then
        step=$(column 8) ips=$(column 9)
        [[ $dtype == f32 ]] && f32_ips=$ips
        vs=$(awk -v a="$ips" -v b="$f32_ips" 'BEGIN { if (b > 0) printf "%.2f×", a / b; else print "–" }')
        echo "| $dtype | $step | $ips | $vs |" | tee -a "$OUT/report.md"
    else
        echo "| $dtype | $(why $?) | – | – |" | tee -a "$OUT/report.md"
        FAILED=1
    fi
done
echo | tee -a "$OUT/report.md"

echo "## 4. Pre-training, configs/fashion_mnist/moco_unmix.toml at width $WIDTH, $EPOCHS epochs" | tee -a "$OUT/report.md"
start=$(date +%s) budget=$(left)
(( budget > 0 )) || budget=1
timeout "$budget" "$BIN" train --config configs/fashion_mnist/moco_unmix.toml --device "$DEVICE" --overwrite \
    --out-dir "$OUT/runs" --set "model.backbone.width=$WIDTH" --set "optim.epochs=$EPOCHS" "${TRAIN_SETS[@]}" \
    2>&1 | tee "$OUT/train.txt"
status=${PIPESTATUS[0]}
echo | tee -a "$OUT/report.md"
if [[ $status != 0 ]]; then
    echo "Pre-training: $(why $status)" | tee -a "$OUT/report.md"
    FAILED=1
fi
echo "Wall time: $(( $(date +%s) - start )) s; the run's last lines:" | tee -a "$OUT/report.md"
echo '```' >> "$OUT/report.md"
tail -5 "$OUT/train.txt" >> "$OUT/report.md"
echo '```' >> "$OUT/report.md"
echo "Kit's wall time: $(( $(date +%s) - START )) s" | tee -a "$OUT/report.md"
echo "Report: $OUT/report.md"
exit $FAILED
