#!/bin/sh
# Resident memory of a long follow run: N small update files (one changed order each)
# arrive in a followed directory in batches of 1,000 while the job runs, as a producer
# drops them, and each batch is removed once applied, as a cleaner does; N epochs with
# --stats, --changes and --report on. Prints resident_bytes after the base and at every
# tenth of the way.
#
# usage: benches/follow_memory.sh [N] [BINARY]   (N defaults to 100000; BINARY to
#        target/release/discounting). 100,000 epochs take about two minutes here.
set -eu
n=${1:-100000}
bin=$(realpath "${2:-target/release/discounting}")
batch=1000
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
"$bin" generate --orders 2000 --codes 100 --updates "$n" --update-size 1 --seed 5 --out gen 2>/dev/null
mkdir dir waiting
# The orders the job holds after each tenth: the generator's updates add new orders and
# delete others, so the state itself grows; memory is to follow it, not the epochs.
find gen -name 'update-*.jsonl' | sort | xargs cat | awk -v n="$n" -v base=2000 '
    BEGIN { held = base; for (i = 1; i <= base; i++) live[i] = 1 }
    /"table":"orders"/ {
        match($0, /"id":[0-9]+/); id = substr($0, RSTART + 5, RLENGTH - 5)
        if ($0 ~ /"op":"delete"/) { if (id in live) { delete live[id]; held-- } }
        else if (!(id in live)) { live[id] = 1; held++ }
    }
    { if (NR % (n / 10) == 0) printf "orders_held_epoch_%d=%d\n", NR, held }' >held.txt
find gen -name 'update-*.jsonl' -exec mv -t waiting {} +
"$bin" run --codes gen/discount_codes.csv --orders gen/orders.csv --follow dir \
    --stats -q --format csv --changes changes.csv --report report.html >/dev/null 2>stats.log &
job=$!
# Bounded waits: at most 60 s for a batch to be applied, then the run is stopped and the
# figures say so.
applied() { grep -q "^stats: epoch=$1 " stats.log; }
given=0
while [ "$given" -lt "$n" ]; do
    ls waiting | sort | head -n "$batch" >names
    (cd waiting && xargs mv -t ../dir) <names
    given=$((given + $(wc -l <names)))
    deadline=$(( $(date +%s) + 60 ))
    while ! applied "$given"; do
        if ! kill -0 "$job" 2>/dev/null || [ "$(date +%s)" -gt "$deadline" ]; then
            echo "the run did not reach epoch $given:" >&2
            tail -3 stats.log >&2
            given=$n
            break
        fi
        sleep 0.05
    done
    (cd dir && xargs rm -f) <names
done
kill -TERM "$job" 2>/dev/null || true
wait "$job" || true
resident() { grep "^stats: epoch=$1 " stats.log | sed 's/.*resident_bytes=//'; }
echo "epochs=$(grep -c '^stats: epoch=' stats.log)"
echo "resident_bytes_epoch_1=$(resident 1)"
for tenth in 1 2 3 4 5 6 7 8 9 10; do
    echo "resident_bytes_epoch_$((n * tenth / 10))=$(resident $((n * tenth / 10)))"
done
cat held.txt
grep '^stats: peak_resident_bytes=' stats.log | sed 's/^stats: //'
echo "report_bytes=$(wc -c <report.html) changes_bytes=$(wc -c <changes.csv)"
