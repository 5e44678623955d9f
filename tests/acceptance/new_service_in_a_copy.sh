#!/usr/bin/env bash
# `make check-new-service`: the acceptance of `waybill new service`, done as a newcomer would.
# In a fresh clone of this repository: scaffold a service, then run the README's own
# commands there (`make lint`, `make test`) and check that `waybill up` starts the new
# service with the others. Takes a full install and test run, so it is not in `make test`;
# .ci/run runs it.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
up_pid=""
cleanup() {
  if [ -n "$up_pid" ]; then kill -INT "$up_pid" 2>/dev/null || true; wait "$up_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

git clone --quiet "$root" "$work/waybill"
cd "$work/waybill"
make install >/dev/null
.venv/bin/waybill new service dock-scheduler --description "plans dock slots for released orders"
make lint
make test PYTEST_ARGS="-q -p no:cacheprovider"

# `waybill up` starts it beside the others: its URL is printed once it is ready.
.venv/bin/waybill up --port 0 --monitor-port 0 --state-dir "$work/state" --order-every 0 \
  >"$work/up.log" 2>&1 &
up_pid=$!
for _ in $(seq 1 180); do
  if grep -q "Waybill is up" "$work/up.log"; then break; fi
  if ! kill -0 "$up_pid" 2>/dev/null; then break; fi
  sleep 1
done
if ! grep -q "^service dock-scheduler: *http://" "$work/up.log"; then
  echo "waybill up did not start dock-scheduler:" >&2
  cat "$work/up.log" >&2
  exit 1
fi
echo "check-new-service: the scaffolded service passed make lint and make test, and waybill up started it"
