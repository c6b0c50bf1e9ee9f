#!/usr/bin/env bash
# The demo: two local Tansu brokers (memory engine: group state; sqlite engine: retention), the
# workload of examples/workload.rs, and lagwatch on config/lagwatch.yaml.
# DEMO_SECONDS=N stops it after N seconds (default: run until Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
.ci/setup
tansu="$(.ci/install-tansu)"
echo "building lagwatch and the workload..."
cargo build --quiet --bin lagwatch --example workload
target="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

start_broker() { # port storage-url (Tansu resolves sqlite paths against its working directory)
  (cd "$work" && exec "$tansu" broker --listener-url "tcp://127.0.0.1:$1" --advertised-listener-url "tcp://127.0.0.1:$1" \
    --storage-engine "$2" >"$work/tansu-$1.log" 2>&1) &
  pids+=($!)
}
start_broker 19092 "memory://tansu/"
start_broker 19093 "sqlite://tansu.db?maintenance_interval=5s"
for port in 19092 19093; do
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.2
  done
done

"$target/debug/examples/workload" --memory 127.0.0.1:19092 --sqlite 127.0.0.1:19093 >"$work/workload.log" 2>&1 &
pids+=($!)
"$target/debug/lagwatch" --config config/lagwatch.yaml >"$work/lagwatch.log" 2>&1 &
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
  echo "no lag yet; logs in $work"; tail -5 "$work/lagwatch.log"; exit 1; }
echo
if [ -n "${DEMO_SECONDS:-}" ]; then
  sleep "$DEMO_SECONDS"
else
  echo "Ctrl-C to stop."
  wait "${pids[@]}"
fi
