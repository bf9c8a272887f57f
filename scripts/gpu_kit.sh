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
# 3. A real pre-training of the embedded set (`configs/fashion_mnist/moco_unmix.toml`) at full
#    width, its kNN accuracy and its time.
# Everything is written to $OUT (default gpu-kit-results/), the table also to stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

DEVICE=cuda WIDTH=64 BATCHES="256 512" STEPS=20 EPOCHS=16 CROP=32 TRAIN_SETS=()
if [[ "${1:-}" == "--cpu" ]]; then
    DEVICE=cpu WIDTH=4 BATCHES="16" STEPS=2 EPOCHS=1
    TRAIN_SETS=(--set data.train_per_class=20 --set data.test_per_class=10)
fi
BIN="${UNMIX_BIN:-./unmix}"
OUT="${OUT:-gpu-kit-results}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$OUT"
[[ -x "$BIN" ]] || { echo "error: $BIN: no unmix binary (set UNMIX_BIN)" >&2; exit 2; }

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
    echo
} | tee "$OUT/report.md"

# Peak used device memory (MiB) while "$@" runs, above what was in use before; "–" without
# nvidia-smi. The command's stdout goes to $OUT/last.txt.
peak_mib() {
    if [[ $have_smi == no ]]; then
        "$@" > "$OUT/last.txt"
        echo "–"
        return
    fi
    local base
    base=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$OUT/smi.txt" &
    local smi=$!
    "$@" > "$OUT/last.txt"
    kill "$smi" 2>/dev/null || true
    wait "$smi" 2>/dev/null || true
    sort -n "$OUT/smi.txt" | tail -1 | awk -v b="$base" '{print $1 - b}'
}

echo "## 1. Backend check" | tee -a "$OUT/report.md"
"$BIN" check-backend --device "$DEVICE" | tee -a "$OUT/report.md"
echo | tee -a "$OUT/report.md"

echo "## 2. Training step, ResNet-18 width $WIDTH, ${CROP}×${CROP}" | tee -a "$OUT/report.md"
{
    echo
    echo "| method | batch | unmix images/s | unmix peak MiB | PyTorch eager images/s | PyTorch peak MiB | unmix / PyTorch |"
    echo "|---|---|---|---|---|---|---|"
} | tee -a "$OUT/report.md"
for name in moco moco_unmix simclr simclr_unmix byol byol_unmix swav swav_unmix; do
    cfg="configs/fashion_mnist/$name.toml"
    for batch in $BATCHES; do
        sets=(--set "model.backbone.width=$WIDTH" --set "optim.batch_size=$batch"
              --set "data.augmentation.crop_size=$CROP" --set "run.device=\"$DEVICE\"")
        ours_mem=$(peak_mib "$BIN" bench --device "$DEVICE" --config "$cfg" \
            --width "$WIDTH" --batch "$batch" --steps "$STEPS" --set "data.augmentation.crop_size=$CROP")
        ours=$(tail -1 "$OUT/last.txt" | awk -F'|' '{gsub(/ /, "", $7); print $7}')
        torch_ips="–" torch_mem="–" ratio="–"
        if [[ $have_torch == yes ]]; then
            "$BIN" parity-step --config "$cfg" --out "$OUT/step.safetensors" "${sets[@]}" > /dev/null
            torch_mem=$(peak_mib "$PYTHON" docs/reference/bench_step.py "$OUT/step.safetensors" \
                --device "$DEVICE" --steps "$STEPS")
            torch_ips=$(tail -1 "$OUT/last.txt" | awk -F'|' '{gsub(/ /, "", $6); print $6}')
            ratio=$(awk -v a="$ours" -v b="$torch_ips" 'BEGIN { if (b > 0) printf "%.2f×", a / b; else print "–" }')
        fi
        echo "| $name | $batch | $ours | $ours_mem | $torch_ips | $torch_mem | $ratio |" | tee -a "$OUT/report.md"
    done
done
rm -f "$OUT/step.safetensors"
echo | tee -a "$OUT/report.md"

echo "## 3. Pre-training, configs/fashion_mnist/moco_unmix.toml at width $WIDTH, $EPOCHS epochs" | tee -a "$OUT/report.md"
start=$(date +%s)
"$BIN" train --config configs/fashion_mnist/moco_unmix.toml --device "$DEVICE" --overwrite \
    --out-dir "$OUT/runs" --set "model.backbone.width=$WIDTH" --set "optim.epochs=$EPOCHS" "${TRAIN_SETS[@]}" \
    2>&1 | tee "$OUT/train.txt"
echo | tee -a "$OUT/report.md"
echo "Wall time: $(( $(date +%s) - start )) s; the run's last lines:" | tee -a "$OUT/report.md"
echo '```' >> "$OUT/report.md"
tail -5 "$OUT/train.txt" >> "$OUT/report.md"
echo '```' >> "$OUT/report.md"
echo "Report: $OUT/report.md"
