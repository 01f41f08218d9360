#!/usr/bin/env bash
# Fresh clone to the first served prediction, timed as a new user meets it.
#
# Clones this checkout's HEAD into a temporary folder and, with an empty
# environment cache (MNIST_TFX_ENV_CACHE), runs the README's commands:
#   ./mnist-tfx run        builds the environment, fetches MNIST, runs the pipeline
#   ./mnist-tfx serve      serves the pushed model (gRPC on a free port)
#   ./mnist-tfx predict    the first answer from it
# and prints the time of each step and the total, then appends them as one row to
# bench/results/first_prediction.csv (bench/results.py, run with the host's
# python3). Everything it made is removed at the end (KEEP=1 keeps it). Needs what
# a new machine needs: network, root, npm.
# PROFILE names the run's profile (default: the default profile, full).
#
#   bench/first_prediction.sh
#   PROFILE=reference bench/first_prediction.sh
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/mnist-tfx-first-prediction.XXXXXX)
export MNIST_TFX_ENV_CACHE="$work/cache"
server_pid=

# The launcher, the chroot and the Python server are a chain of processes: end the
# deepest first, each by its pid.
kill_tree() {
  local child
  for child in $(ps -o pid= --ppid "$1"); do kill_tree "$child"; done
  kill "$1" 2>/dev/null || true
}

cleanup() {
  if [[ -n "$server_pid" ]]; then kill_tree "$server_pid"; wait "$server_pid" 2>/dev/null || true; fi
  if [[ "${KEEP:-0}" != 1 ]]; then rm -rf "$work"; else echo "kept: $work"; fi
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

seconds_since() { echo $(( $(date +%s) - $1 )); }

started=$(date +%s)
git clone -q "$repo" "$work/mnist-tfx"
cd "$work/mnist-tfx"

step=$(date +%s)
# stderr is kept too: the environment's build time is reported there.
./mnist-tfx run ${PROFILE:+--profile "$PROFILE"} 2> >(tee "$work/run.err" >&2) | tee "$work/run.txt"
run_seconds=$(seconds_since "$step")

step=$(date +%s)
port=$(free_port)
./mnist-tfx serve ${PROFILE:+--profile "$PROFILE"} --port="$port" > "$work/serve.txt" 2>&1 &
server_pid=$!
until ./mnist-tfx predict --index 0-4 --server "localhost:$port" > "$work/predict.txt" 2>&1; do
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/serve.txt"; exit 1; }
  sleep 1
done
serve_seconds=$(seconds_since "$step")
cat "$work/predict.txt"

total=$(seconds_since "$started")
echo
echo "fresh clone to first served prediction (profile ${PROFILE:-full}, $(nproc) cores, $(git rev-parse --short HEAD), $(date -u +%F)):"
echo "  ./mnist-tfx run (set-up, data, pipeline): $((run_seconds / 60)) min $((run_seconds % 60)) s"
echo "  ./mnist-tfx serve until predict answers:  $((serve_seconds / 60)) min $((serve_seconds % 60)) s"
echo "  total:                                    $((total / 60)) min $((total % 60)) s"

# The figures, and three read from what `run` printed (empty when not found).
first_match() { sed -n "s/$1/\1/p;T;q" "$2"; }
environment_seconds=$(first_match '.*environment ready in \([0-9]*\) s.*' "$work/run.err")
trainer_seconds=$(first_match '^\[[0-9]*\/[0-9]*\] Trainer done in \([0-9.]*\) s$' "$work/run.txt")
accuracy=$(first_match '^test accuracy: candidate \([0-9.]*\)%.*' "$work/run.txt")
python3 "$repo/bench/results.py" first_prediction \
  --settings "profile=${PROFILE:-full};cores=$(nproc)" \
  environment_s="$environment_seconds" run_s="$run_seconds" serve_s="$serve_seconds" \
  total_s="$total" trainer_s="$trainer_seconds" test_accuracy_pct="$accuracy" || true
