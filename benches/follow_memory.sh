#!/bin/sh
# Resident memory of a long follow run: N small update files (one changed order each)
# in a followed directory, applied as N epochs with --stats, --changes and --report on;
# prints resident_bytes after the base, at a tenth of the way, and at the last epoch.
#
# usage: benches/follow_memory.sh [N] [BINARY]   (N defaults to 100000; BINARY to
#        target/release/discounting). Needs about N/10 seconds at least: each epoch of a
#        followed directory takes ~0.1 s (see README, Follow mode).
set -eu
n=${1:-100000}
bin=$(realpath "${2:-target/release/discounting}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
"$bin" generate --orders 2000 --codes 100 --updates "$n" --update-size 1 --seed 5 --out gen 2>/dev/null
mkdir dir
find gen -name 'update-*.jsonl' -exec mv -t dir {} +
"$bin" run --codes gen/discount_codes.csv --orders gen/orders.csv --follow dir \
    --stats -q --format csv --changes changes.csv --report report.html >/dev/null 2>stats.log &
job=$!
# Bounded wait: at most 2 s per epoch, then the run is stopped and the figures say so.
deadline=$(( $(date +%s) + 60 + 2 * n ))
while ! grep -q "^stats: epoch=$n " stats.log; do
    if ! kill -0 "$job" 2>/dev/null || [ "$(date +%s)" -gt "$deadline" ]; then
        echo "the run did not reach epoch $n:" >&2
        tail -3 stats.log >&2
        break
    fi
    sleep 5
done
kill -TERM "$job" 2>/dev/null || true
wait "$job" || true
resident() { grep "^stats: epoch=$1 " stats.log | sed 's/.*resident_bytes=//'; }
echo "epochs=$(grep -c '^stats: epoch=' stats.log)"
echo "resident_bytes_epoch_1=$(resident 1)"
echo "resident_bytes_epoch_$((n / 10))=$(resident $((n / 10)))"
echo "resident_bytes_epoch_$n=$(resident "$n")"
grep '^stats: peak_resident_bytes=' stats.log | sed 's/^stats: //'
echo "report_bytes=$(wc -c <report.html) changes_bytes=$(wc -c <changes.csv)"
