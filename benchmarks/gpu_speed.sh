#!/usr/bin/env bash
# benchmarks/train_speed.py's tables on a GPU, in one go: the seed configuration in float32 (all paths, the
# Keras peer and Trainer.predict), in bfloat16, with each Conv3x3 form, and at batch 256 (how close the network
# gets to the card's limit when the batch fills it). Whole epochs (--steps 0); the matmul peak at 8192 x 8192.
#
#     bash benchmarks/gpu_speed.sh [LOG_DIR]    # tables on stdout, each run's table and log under LOG_DIR
#
# The Keras peer runs on TensorFlow when it is installed, else on the torch backend (KERAS_BACKEND=torch).
set -uo pipefail  # a failed run prints its log's tail (tee would hide the status)
logs=${1:-gpu_speed_logs}
mkdir -p "$logs"
python=${PYTHON:-python3}
if [[ -z ${KERAS_BACKEND:-} ]] && ! "$python" -c "import tensorflow" 2>/dev/null; then
  export KERAS_BACKEND=torch
fi
run() {
  local name=$1
  shift
  echo "== $name: train_speed.py --steps 0 --peak_size 8192 $*"
  "$python" benchmarks/train_speed.py --steps 0 --peak_size 8192 "$@" 2> "$logs/$name.log" | tee "$logs/$name.md" \
    || tail -5 "$logs/$name.log"
}
run float32 --rounds 2 --epochs 2
run float32-matmul --rounds 1 --epochs 2 --conv matmul --paths "emojax on-device,emojax host-fed" --no_predict
run bfloat16 --rounds 1 --epochs 2 --dtype bfloat16 --no_predict --paths "emojax on-device,emojax host-fed"
run float32-batch256 --rounds 1 --epochs 2 --batch_size 256 --paths "emojax on-device,keras" --no_predict
run bfloat16-batch256 --rounds 1 --epochs 2 --batch_size 256 --dtype bfloat16 --paths "emojax on-device" --no_predict
