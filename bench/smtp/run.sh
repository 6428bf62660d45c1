#!/usr/bin/env bash
# bench/smtp: SMTP → Maildir throughput, measured with Postfix's smtp-source.
#
#   bench/smtp/run.sh [-n MESSAGES] [-s SESSIONS] [-l BYTES] [-k] [-x | -c] [-j JUNKDB] [-t HOST:PORT -m MAILDIR]
#
# Without -t it creates a fresh development instance in a temporary directory (fsync on,
# as always), starts master, pushes MESSAGES messages of BYTES bytes over SESSIONS
# parallel sessions to demo@example.test, and prints two rates:
#   accepted  = messages / time until smtp-source finished (every message got its 250)
#   delivered = messages / time until that many files exist in the Maildir's new/
# With -t and -m it measures any other server (Postfix, say) the same way: HOST:PORT
# receives the load, MAILDIR is the recipient's Maildir that fills up. -k keeps the
# instance directory. spamd judges every message (SPF, DKIM, DMARC of other.test, whose
# records a fake DNS server on loopback serves, bench/smtp/fakedns); -x runs the instance
# without spamd, to measure what it costs; -c does both, one after the other with a fresh
# instance each, and prints both rates and their ratio. With spamd on, it also prints
# spamd's time per verdict (median and 99th percentile of the ms= of its log lines).
# -j JUNKDB puts a trained classifier database (bench/spam -db FILE) in the instance, so
# that the classifier gives an opinion on every message as well (a fresh one has none).
# smtp-source comes from Debian's postfix package.
set -euo pipefail

n=5000 sessions=10 size=4096 target="" maildir="" keep="" nospamd="" compare="" junkdb=""
while getopts "n:s:l:t:m:j:kxc" opt; do
	case $opt in
	n) n=$OPTARG ;; s) sessions=$OPTARG ;; l) size=$OPTARG ;;
	t) target=$OPTARG ;; m) maildir=$OPTARG ;; k) keep=1 ;; x) nospamd=1 ;; c) compare=1 ;;
	j) junkdb=$(realpath "$OPTARG") ;;
	*) sed -n '2,21p' "$0"; exit 2 ;;
	esac
done
if [ -n "$compare" ]; then
	# spamd on, then off, each on a fresh instance; the rates and their ratio.
	on=$("$0" -n "$n" -s "$sessions" -l "$size" ${junkdb:+-j "$junkdb"}) || { echo "$on"; exit 1; }
	echo "$on"
	off=$("$0" -n "$n" -s "$sessions" -l "$size" -x) || { echo "$off"; exit 1; }
	echo "$off"
	rate() { awk -v k="$1" '$1 == k":" { print $2 }' <<<"$2"; }
	for k in accepted delivered; do
		awk -v k="$k" -v on="$(rate "$k" "$on")" -v off="$(rate "$k" "$off")" 'BEGIN {
			printf "%-9s  spamd on %s msg/s, off %s msg/s: on/off = %.2f (spamd costs %.0f%%)\n", k ":", on, off, on / off, 100 * (1 - on / off)
		}'
	done
	exit 0
fi
command -v smtp-source >/dev/null || PATH=$PATH:/usr/sbin
command -v smtp-source >/dev/null || { echo "smtp-source missing: apt-get install postfix (see .ci/run)"; exit 1; }
top=$(cd "$(dirname "$0")/../.." && pwd)

count() { { find "$1" -maxdepth 1 -type f 2>/dev/null || true; } | wc -l; }
# daemon_cpu prints "name seconds" for each daemon master started: user + system CPU
# time from /proc (clock ticks of 1/100 s).
daemon_cpu() {
	local p
	for p in $(pgrep -P "$master" 2>/dev/null); do
		awk -v p="$p" '{ sub(/^[0-9]+ \(/, ""); split($0, a, /\) /); split(a[2], f, " "); printf "%s %.2f\n", a[1], (f[12] + f[13]) / 100 }' "/proc/$p/stat" 2>/dev/null || true
	done | sort
}
now() { date +%s.%N; }

if [ -z "$target" ]; then
	make -C "$top" -s build
	dir=$(mktemp -d /tmp/postern-bench.XXXXXX)
	chmod 755 "$dir"
	base=${PORT_BASE:-31000}
	"$top/bin/mailctl" -c "$dir/postern.toml" init --dev --port-base "$base" >/dev/null
	(cd "$top" && go build -o "$dir/fakedns" ./bench/smtp/fakedns)
	"$dir/fakedns" >"$dir/fakedns.addr" &
	fakedns=$!
	for _ in $(seq 50); do [ -s "$dir/fakedns.addr" ] && break; sleep 0.1; done
	# spamd (and remote) ask the fake DNS server, never the host's resolvers.
	sed -i "s|^# resolvers = \[\]|resolvers = [\"$(cat "$dir/fakedns.addr")\"]|" "$dir/postern.toml"
	if [ -n "$nospamd" ]; then
		sed -i '/^\[services.spamd\]/,/^enable/s/^enable = true/enable = false/' "$dir/postern.toml"
		echo "spamd: off"
	else
		echo "spamd: on"
	fi
	if [ -n "$junkdb" ]; then
		spamdir=$dir/data/spam # the development instance's data directory, as bench/spamd
		mkdir -p "$spamdir"
		cp "$junkdb" "$spamdir/junk.db"
		[ "$(id -u)" != 0 ] || chown -R postern-spam "$spamdir"
		echo "classifier: trained ($junkdb)"
	fi
	"$top/bin/master" -c "$dir/postern.toml" 2>"$dir/master.log" &
	master=$!
	cleanup() {
		kill -TERM $master 2>/dev/null; wait $master 2>/dev/null || true
		kill -TERM $fakedns 2>/dev/null; wait $fakedns 2>/dev/null || true
		if [ -z "$keep" ]; then rm -rf "$dir"; else echo "instance kept in $dir"; fi
	}
	trap cleanup EXIT
	target=127.0.0.1:$((base + 25))
	maildir=$dir/data/mail/example.test/demo/new
	for _ in $(seq 100); do
		(exec 3<>/dev/tcp/127.0.0.1/$((base + 25))) 2>/dev/null && break
		sleep 0.1
	done
	# spamd listens once it has opened its databases (a trained classifier's weights
	# take a moment to load): the load starts when it does, not during its start.
	if [ -z "$nospamd" ]; then
		for _ in $(seq 300); do [ -S "$dir/spool/private/spamd" ] && break; sleep 0.1; done
	fi
	cpu_before=$(daemon_cpu)
fi
[ -n "$maildir" ] || { echo "-t needs -m MAILDIR"; exit 2; }

before=$(count "$maildir")
want=$((before + n))
echo "smtp-source: $n messages of $size bytes over $sessions sessions to $target"
start=$(now)
smtp-source -s "$sessions" -m "$n" -l "$size" -f bench@other.test -t demo@example.test "$target"
accepted=$(now)
while [ "$(count "$maildir")" -lt "$want" ]; do
	if awk -v a="$accepted" -v t="$(now)" 'BEGIN { exit !(t - a > 300) }'; then
		echo "only $(( $(count "$maildir") - before )) of $n delivered after 300 s"; exit 1
	fi
	sleep 0.05
done
delivered=$(now)
awk -v n="$n" -v s="$start" -v a="$accepted" -v d="$delivered" 'BEGIN {
	printf "accepted:  %6.0f msg/s  (%.2f s)\n", n / (a - s), a - s
	printf "delivered: %6.0f msg/s  (%.2f s)\n", n / (d - s), d - s
}'
if [ -n "${dir:-}" ]; then
	# CPU seconds each daemon spent on the load (summed over its processes), per
	# message: where the machine's time went.
	join -a 2 -e 0 -o 0,1.2,2.2 <(echo "$cpu_before" | awk '{ s[$1] += $2 } END { for (k in s) print k, s[k] }' | sort) \
		<(daemon_cpu | awk '{ s[$1] += $2 } END { for (k in s) print k, s[k] }' | sort) |
		awk -v n="$n" '{ d = $3 - $2; if (d > 0) { printf "%s%s %.0f µs", sep, $1, 1e6 * d / n; sep = ", " } } END { print "" }' |
		sed 's/^/CPU per message: /'
fi
if [ -n "${dir:-}" ] && [ -z "$nospamd" ]; then
	# spamd's own time per verdict, from the ms= of its "verdict" log lines.
	grep 'msg=verdict daemon=spamd' "$dir/master.log" | sed -n 's/.* ms=\([0-9.]*\).*/\1/p' | sort -g | awk '
		{ v[NR] = $1 }
		END {
			if (NR == 0) { print "spamd verdicts: none logged"; exit }
			printf "spamd verdict: median %.3f ms, p99 %.3f ms, max %.3f ms (%d verdicts)\n", v[int((NR + 1) / 2)], v[int(NR * 0.99 + 0.999)], v[NR], NR
		}'
fi
