#!/bin/sh
# bench/import: mailctl import of a large mbox into a running development instance.
#
#   bench/import/run.sh [-n MESSAGES] [-size OCTETS]     (default 200000 and 1000)
#
# It builds Postern, creates an instance in a temporary directory (port base 56100),
# writes an mbox of MESSAGES messages of about OCTETS each, starts master, imports the
# mbox into demo@example.test's INBOX, and reports the time taken, the peak resident
# memory of mailctl (GNU time's "Maximum resident set size") and that of local, which
# writes the messages (VmHWM), and how many files reached new/. Memory must not grow
# with MESSAGES: run it with -n 20000 and -n 200000 and compare.
set -eu
n=200000
size=1000
while [ $# -gt 0 ]; do
	case $1 in
	-n) n=$2; shift 2 ;;
	-size) size=$2; shift 2 ;;
	*) echo "usage: $0 [-n MESSAGES] [-size OCTETS]" >&2; exit 2 ;;
	esac
done
cd "$(dirname "$0")/../.."
make -s build
dir=$(mktemp -d /tmp/postern-bench-import-XXXXXX)
trap 'kill $master 2>/dev/null; wait $master 2>/dev/null; rm -rf "$dir"' EXIT
bin/mailctl -c "$dir/postern.toml" init --dev --port-base 56100 >/dev/null
# The mbox: MESSAGES messages, every third read, every fifth flagged, bodies padded
# to SIZE octets, some lines that mboxrd escapes.
awk -v n="$n" -v size="$size" 'BEGIN {
	pad = ""; while (length(pad) < size - 200) pad = pad "Lorem ipsum dolor sit amet, consectetur adipiscing elit.\n"
	for (i = 1; i <= n; i++) {
		printf "From sender%d@old.test Mon Dec  7 10:%02d:%02d 2020\n", i, (i / 60) % 60, i % 60
		printf "From: sender%d@old.test\nTo: demo@example.test\nSubject: message %d\n", i, i
		if (i % 3 == 0) printf "Status: RO\n"
		if (i % 5 == 0) printf "X-Status: F\n"
		printf "\nBody of message %d.\n>From an escaped line\n%s\n", i, pad
	}
}' > "$dir/big.mbox"
echo "mbox: $n messages, $(du -m "$dir/big.mbox" | cut -f1) MiB"
bin/master -c "$dir/postern.toml" >"$dir/master.log" 2>&1 &
master=$!
for i in $(seq 1 100); do
	bin/mailctl -c "$dir/postern.toml" status >/dev/null 2>&1 && break
	sleep 0.1
done
start=$(date +%s.%N)
/usr/bin/time -f "%M" -o "$dir/rss" bin/mailctl -c "$dir/postern.toml" import mbox "$dir/big.mbox" demo@example.test
end=$(date +%s.%N)
localpid=$(pgrep -P "$master" -x local || true)
localhwm=$(grep VmHWM "/proc/$localpid/status" 2>/dev/null | awk '{print $2}')
files=$(ls "$dir/data/mail/example.test/demo/new" "$dir/data/mail/example.test/demo/cur" | grep -c ',S=' || true)
echo "time: $(echo "$end - $start" | bc) s for $n messages"
echo "mailctl peak RSS: $(cat "$dir/rss") KiB"
echo "local peak RSS (VmHWM): ${localhwm:-?} KiB"
echo "files in the INBOX: $files"
