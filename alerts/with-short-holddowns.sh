#!/bin/sh
# Writes a copy of a Prometheus rule file with every `for:` hold-down replaced by DURATION, for
# end-to-end tests that cannot wait minutes for an alert to fire. Only `for:` lines change:
# thresholds and range windows stay as they are. Never deploy the copy: without hold-downs,
# alerts flap.
#
# Usage: alerts/with-short-holddowns.sh IN.yaml OUT.yaml DURATION    (e.g. 5s; 0s fires at once)
set -eu

if [ "$#" -ne 3 ]; then
  echo "usage: $0 IN.yaml OUT.yaml DURATION" >&2
  exit 2
fi
in=$1
out=$2
duration=$3

case $duration in
  *[!0-9smhdwy]* | "" | [!0-9]*)
    echo "$0: DURATION must be a Prometheus duration such as 5s or 1m, not '$duration'" >&2
    exit 2
    ;;
esac

if [ ! -r "$in" ]; then
  echo "$0: cannot read $in" >&2
  exit 2
fi

sed "s/^\([[:space:]]*\)for:[[:space:]]*[0-9][0-9smhdwy]*[[:space:]]*$/\1for: $duration/" "$in" >"$out"

# Every hold-down must have been rewritten: a `for:` in another form would keep its long value.
if grep -q "^[[:space:]]*for:" "$out" && grep "^[[:space:]]*for:" "$out" | grep -qv "for: $duration\$"; then
  echo "$0: some for: lines in $in were not rewritten:" >&2
  grep -n "^[[:space:]]*for:" "$out" | grep -v "for: $duration\$" >&2
  exit 1
fi
