#!/usr/bin/env bash
# The GPU run kit on a machine lent by the minute (this workplace's `device` tool), in one call.
# The tool copies the working tree there and brings back what is written under $OUT (a few files,
# each small), so the binary travels compressed and the results come back as a handful of files.
#
# Here (2 cores, about 21 minutes from an empty target/):
#
#     cargo xtask gpu-kit      # the release binary, and target/gpu-kit/unmix.xz (stripped, xz)
#
# Then one `run` of the device tool with `carry: ["target/gpu-kit/unmix.xz"]` and a timeout that
# leaves room for the kit's budget (KIT_BUDGET_S, default 420 s here) plus the start:
#
#     bash scripts/gpu_device_run.sh
#
# It unpacks the binary with Python's lzma (the machine may have no `xz`), records `nvidia-smi`,
# runs `scripts/gpu_kit.sh` (arguments passed on, e.g. `--cpu`) under the budget with its results
# in $KIT_DIR (default /tmp/unmix-kit), copies the report, the log, the pre-training's output and
# its metrics.csv to $OUT, and prints the report. It exits with the kit's status.
# `UNMIX_BIN` (a binary already unpacked) skips the unpacking.
set -uo pipefail
cd "$(dirname "$0")/.."

: "${OUT:?OUT: the folder whose files come back (the device tool sets it)}"
KIT_DIR="${KIT_DIR:-/tmp/unmix-kit}"
PACKED="${UNMIX_XZ:-target/gpu-kit/unmix.xz}"
mkdir -p "$KIT_DIR" "$OUT"
export PYTHONUNBUFFERED=1

if [[ -z "${UNMIX_BIN:-}" ]]; then
    [[ -f "$PACKED" ]] || { echo "error: $PACKED: no packed binary (cargo xtask gpu-kit makes it)" >&2; exit 2; }
    UNMIX_BIN="$KIT_DIR/unmix"
    python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
        "$PACKED" "$UNMIX_BIN" || { echo "error: $PACKED: could not unpack" >&2; exit 2; }
    chmod +x "$UNMIX_BIN"
fi

if command -v nvidia-smi >/dev/null; then nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1; fi
UNMIX_BIN="$UNMIX_BIN" OUT="$KIT_DIR/results" KIT_BUDGET_S="${KIT_BUDGET_S:-420}" \
    KIT_STEPS="${KIT_STEPS:-10}" bash scripts/gpu_kit.sh "$@" > "$OUT/kit-output.txt" 2>&1
status=$?

for file in report.md log.txt train.txt; do
    [[ -f "$KIT_DIR/results/$file" ]] && cp "$KIT_DIR/results/$file" "$OUT/"
done
metrics=$(find "$KIT_DIR/results/runs" -name metrics.csv 2>/dev/null | head -1)
[[ -n "$metrics" ]] && cp "$metrics" "$OUT/"
cat "$KIT_DIR/results/report.md" 2>/dev/null || tail -40 "$OUT/kit-output.txt"
echo "kit exit status: $status"
exit $status
