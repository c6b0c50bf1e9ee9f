#!/usr/bin/env bash
# The demo: a local 1-node Apache Kafka cluster on 127.0.0.1:19092 (examples/kafka_cluster.rs),
# the workload of examples/workload.rs, and lagwatch on config/lagwatch.yaml, serving
# http://127.0.0.1:9308/metrics.
# DEMO_SECONDS=N stops it after N seconds (default: run until Ctrl-C). Everything it started,
# the Kafka JVM included, stops with it.
set -euo pipefail
cd "$(dirname "$0")/.."
.ci/setup
for port in 19092 9308; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is in use (another demo still running?)" >&2
    exit 1
  fi
done
echo "building lagwatch, the workload and the Kafka cluster..."
cargo build --quiet --bin lagwatch --example workload --example kafka_cluster
target="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"

work="$(mktemp -d)"
pids=()
cleanup() {
  exec 3>&- || true
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The cluster runs until it is signalled or its stdin closes: fd 3 holds the write end of its
# stdin, so the cluster (and its JVM) stops even if this script is killed without cleanup. The
# other long-lived children must not inherit fd 3 (3>&-), or they would keep the cluster alive.
echo "starting Apache Kafka on 127.0.0.1:19092..."
mkfifo "$work/cluster.stdin"
"$target/debug/examples/kafka_cluster" --port 19092 <"$work/cluster.stdin" \
  >"$work/cluster.out" 2>"$work/cluster.log" &
pids+=($!)
exec 3>"$work/cluster.stdin"
until [ -s "$work/cluster.out" ]; do
  if ! kill -0 "${pids[0]}" 2>/dev/null; then
    echo "the Kafka cluster did not start:" >&2
    tail -20 "$work/cluster.log" >&2
    exit 1
  fi
  sleep 0.2
done
tail -1 "$work/cluster.log"

"$target/debug/examples/workload" --bootstrap 127.0.0.1:19092 >"$work/workload.log" 2>&1 3>&- &
pids+=($!)
"$target/debug/lagwatch" --config config/lagwatch.yaml >"$work/lagwatch.log" 2>&1 3>&- &
pids+=($!)

url="http://127.0.0.1:9308/metrics"
echo "waiting for the first lag figures..."
for _ in $(seq 1 60); do
  if curl -fs "$url" | grep -q '^kafka_consumergroup_lag_messages{.*demo-lagging'; then break; fi
  sleep 1
done
sleep 10
echo
echo "lagwatch is serving $url"
echo
curl -fs "$url" | grep -E '^kafka_consumergroup_(lag_messages|members)\{' || {
  echo "no lag yet; the end of lagwatch's and the workload's logs:" >&2
  tail -5 "$work/lagwatch.log" "$work/workload.log" >&2
  exit 1
}
echo
if [ -n "${DEMO_SECONDS:-}" ]; then
  sleep "$DEMO_SECONDS" 3>&-
else
  echo "Ctrl-C to stop."
  wait "${pids[@]}"
fi
