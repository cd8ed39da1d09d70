#!/usr/bin/env bash
# Fetches MediaPipe BlazePose's two TFLite networks, the pose detector
# (pose_detection.tflite) and the full landmark model
# (pose_landmark_full.tflite), as shipped in the PyPI wheel
# `mediapipe==0.10.21` (CPython 3.11, manylinux x86_64; later versions ship
# no .tflite files), and unpacks just those two files into DIR (default
# ~/.cache/skelact/blazepose). Prints the export line for
# SKELACT_POSE_MODEL. The wheel is ~35 MB and is kept under DIR/wheel.
set -euo pipefail
dir="${1:-${HOME}/.cache/skelact/blazepose}"
python="${PYTHON:-python3}"
files="mediapipe/modules/pose_detection/pose_detection.tflite mediapipe/modules/pose_landmark/pose_landmark_full.tflite"
if [ ! -f "$dir/pose_detection.tflite" ] || [ ! -f "$dir/pose_landmark_full.tflite" ]; then
    mkdir -p "$dir/wheel"
    if ! ls "$dir"/wheel/mediapipe-0.10.21-*.whl >/dev/null 2>&1; then
        "$python" -m pip download mediapipe==0.10.21 --no-deps \
            --only-binary=:all: --python-version 311 --implementation cp \
            --abi cp311 --platform manylinux_2_28_x86_64 -d "$dir/wheel" >&2
    fi
    "$python" - "$(ls "$dir"/wheel/mediapipe-0.10.21-*.whl | head -n 1)" "$dir" $files <<'PY'
import os, sys, zipfile
wheel, out, names = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as z:
    for name in names:
        with z.open(name) as src, open(os.path.join(out, os.path.basename(name)), "wb") as dst:
            dst.write(src.read())
PY
fi
echo "export SKELACT_POSE_MODEL=$dir"
