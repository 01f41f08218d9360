#!/usr/bin/env bash
# Serves the pushed model with the real TensorFlow Serving (the official image),
# on the same ports and with the same batching file as `mnist-tfx serve`.
#
#   serving/tf_serving_docker.sh [MODEL_BASE_PATH]    default: outputs/serving/mnist
#
# Environment: MODEL_NAME (mnist), TF_SERVING_IMAGE (tensorflow/serving:2.21.0),
# GRPC_PORT (8500), REST_PORT (8501), DRY_RUN=1 prints the command instead.
# The container watches the mounted folder: versions the Pusher adds later are
# loaded and swapped in by TF Serving itself.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
# What a shell script cannot import: ServerOptions.port and DOCKER_REST_API_PORT
# (serving/model_servers/options.py), MODEL_NAME (models/serving_contract.py);
# tests/serving/test_tf_serving_docker.py checks that they agree.
grpc_port=8500
rest_port=8501
model_name="${MODEL_NAME:-mnist}"
base_path="$(realpath -m "${1:-$repo/outputs/serving/$model_name}")"
image="${TF_SERVING_IMAGE:-tensorflow/serving:2.21.0}"

command=(docker run --rm --init
  -p "${GRPC_PORT:-$grpc_port}:$grpc_port" -p "${REST_PORT:-$rest_port}:$rest_port"
  --mount "type=bind,source=$base_path,target=/models/$model_name,readonly"
  --mount "type=bind,source=$here/batching_parameters.txt,target=/config/batching_parameters.txt,readonly"
  -e "MODEL_NAME=$model_name"
  "$image"
  --enable_batching=true
  --batching_parameters_file=/config/batching_parameters.txt)

if [ "${DRY_RUN:-0}" = 1 ]; then
  for word in "${command[@]}"; do
    if [[ "$word" =~ ^[A-Za-z0-9_./:=,@+-]+$ ]]; then printf '%s ' "$word"
    else printf '%q ' "$word"; fi
  done
  echo
  exit 0
fi
if [ ! -d "$base_path" ]; then
  echo "no model at $base_path: run the pipeline first (./mnist-tfx run)" >&2
  exit 1
fi
exec "${command[@]}"
