#!/usr/bin/env bash
# Dovecot's imaptest against a fresh Postern development instance (see README.md here):
#
#   IMAPTEST=/path/to/imaptest IMAPTEST_TESTS=/path/to/imaptest/src/tests test/imaptest/run.sh [-k] [TEST]
#
# Creates an instance in a temporary directory (PORT_BASE, default 31000), adds the accounts
# imaptest logs in as, starts master, then runs
#   1. the scripted compliance tests: every file of IMAPTEST_TESTS, or only TEST (a file
#      name there, e.g. "select"), with plain LOGIN on port PORT_BASE+143 (Postern allows
#      LOGIN without TLS on loopback);
#   2. unless TEST is given or STRESS_SECS=0, a stress run: STRESS_CLIENTS (20) clients
#      send random commands to one mailbox for STRESS_SECS (60) seconds and imaptest
#      checks every answer against the state it tracks; STRESS_ARGS adds imaptest
#      arguments (e.g. "checkpoint=10", "own_flags", "seed=1").
# It prints imaptest's summaries and exits non-zero if a test group failed, if the stress
# run reported an error, or if imapd logged a panic. -k keeps the instance directory (with
# master.log and the imaptest output) for a look afterwards.
#
# imaptest is not part of Postern and is not built here: build it from
# https://github.com/dovecot/imaptest (see README.md here) and point IMAPTEST at it.
set -uo pipefail

keep=""
if [ "${1:-}" = -k ]; then keep=1; shift; fi
only="${1:-}"

if [ -z "${IMAPTEST:-}" ] || [ ! -x "$IMAPTEST" ]; then
	cat >&2 <<EOF
test/imaptest/run.sh: set IMAPTEST to the imaptest program (Dovecot's IMAP compliance and
stress tester) and IMAPTEST_TESTS to its scripted tests (the src/tests folder of its
source tree), e.g.
  IMAPTEST=~/imaptest/src/imaptest IMAPTEST_TESTS=~/imaptest/src/tests make imaptest
imaptest is not built by this repository; test/imaptest/README.md says how to build it.
${IMAPTEST:+IMAPTEST=$IMAPTEST is not an executable file.}
EOF
	exit 2
fi
tests="${IMAPTEST_TESTS:-$(dirname "$IMAPTEST")/tests}"
if [ ! -d "$tests" ]; then
	echo "test/imaptest/run.sh: IMAPTEST_TESTS=$tests is not a directory: set it to imaptest's src/tests" >&2
	exit 2
fi
if [ -n "$only" ] && [ ! -f "$tests/$only" ]; then
	echo "test/imaptest/run.sh: no test $only in $tests" >&2
	exit 2
fi
secs=${STRESS_SECS:-60}
clients=${STRESS_CLIENTS:-20}

top=$(cd "$(dirname "$0")/../.." && pwd)
make -C "$top" -s build || exit 1
dir=$(mktemp -d /tmp/postern-imaptest.XXXXXX)
chmod 755 "$dir"
base=${PORT_BASE:-31000}
for off in 25 143 465 587 993; do
	if (exec 3<>/dev/tcp/127.0.0.1/$((base + off))) 2>/dev/null; then
		echo "test/imaptest/run.sh: port $((base + off)) is in use: choose another PORT_BASE" >&2
		exit 1
	fi
done
mailctl() { "$top/bin/mailctl" -c "$dir/postern.toml" "$@"; }
mailctl init --dev --listen 127.0.0.1 --port-base "$base" >"$dir/init.log" || { cat "$dir/init.log"; exit 1; }
"$top/bin/master" -c "$dir/postern.toml" >"$dir/master.log" 2>&1 &
master=$!
cleanup() {
	kill -TERM $master 2>/dev/null
	wait $master 2>/dev/null
	if [ -z "$keep" ]; then rm -rf "$dir"; else echo "instance kept in $dir"; fi
}
trap cleanup EXIT
port=$((base + 143))
for _ in $(seq 200); do
	(exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
	kill -0 $master 2>/dev/null || { echo "master exited:"; tail -20 "$dir/master.log"; exit 1; }
	sleep 0.1
done
# imaptest logs in as user (every compliance test and the stress clients) and user2 (the
# tests that need a second account). authd creates them, so master must be running.
user=imaptest@example.test user2=imaptest2@example.test pass=imaptest-Xq7
for u in $user $user2; do
	printf '%s\n' "$pass" | mailctl user add "$u" --password-stdin >/dev/null || exit 1
done

status=0
common=(host=127.0.0.1 port=$port user=$user pass=$pass)

echo "== imaptest compliance tests (${only:-all of $tests})"
"$IMAPTEST" "${common[@]}" user2=$user2 test="$tests${only:+/$only}" >"$dir/compliance.log" 2>&1
rc=$?
# imaptest prints each failure ("*** Test NAME command N/M (line L) - failed: ...") and
# ends with the summary: groups failed and skipped, base and extension commands failed.
# Failures first (the first two lines of each, and the protocol errors imaptest saw),
# then the summary lines.
grep -A2 '^\*\*\* Test' "$dir/compliance.log" | grep -v '^--$' | head -n 60
grep '^Error: ' "$dir/compliance.log" | head -n 20
grep '^[0-9]* test groups:\|^base protocol:\|^extensions:' "$dir/compliance.log"
if [ $rc -ne 0 ] || grep -q '^\*\*\* Test\|^Error: ' "$dir/compliance.log"; then
	echo "FAIL: compliance tests (imaptest exit $rc); output in $dir/compliance.log"
	status=1
	keep=${keep:-1}
fi

if [ -z "$only" ] && [ "$secs" != 0 ]; then
	# The stress run appends messages from an mbox: the messages of the test groups'
	# mbox files, which cover MIME structures, encodings and odd headers, once per
	# Message-ID (imaptest tells messages apart by it, and the groups reuse some).
	for f in "$tests"/*.mbox; do cat "$f"; echo; done | awk '
		function flush() {
			if (msg != "" && id != "" && !(id in seen)) { seen[id] = 1; printf "%s", msg }
			msg = ""; id = ""
		}
		/^From / { flush(); hdr = 1 }
		{
			if (hdr && $0 == "") hdr = 0
			if (hdr && tolower($0) ~ /^message-id:/) { id = tolower($0); sub(/^message-id:[ \t]*/, "", id) }
			msg = msg $0 "\n"
		}
		END { flush() }' >"$dir/stress.mbox"
	echo "== imaptest stress run: $clients clients, $secs s"
	# shellcheck disable=SC2086 # STRESS_ARGS is a list of imaptest arguments
	"$IMAPTEST" "${common[@]}" mbox="$dir/stress.mbox" clients="$clients" secs="$secs" \
		${STRESS_ARGS:-} >"$dir/stress.log" 2>&1
	rc=$?
	# The last lines are the totals per command; errors are "Error: ..." lines, each
	# a reply that contradicts what imaptest tracked or the protocol.
	tail -n 4 "$dir/stress.log"
	errors=$(grep -c 'Error: \|Panic: \|Fatal: ' "$dir/stress.log")
	grep 'Error: \|Panic: \|Fatal: ' "$dir/stress.log" | sort | uniq -c | sort -rn | head -n 20
	echo "stress run: $errors errors (imaptest exit $rc)"
	if [ "$errors" -ne 0 ] || [ $rc -ne 0 ]; then
		echo "FAIL: stress run; output in $dir/stress.log"
		status=1
		keep=${keep:-1}
	fi
fi

if grep -q 'panic:' "$dir/master.log"; then
	echo "FAIL: a daemon panicked; see $dir/master.log"
	grep -A5 'panic:' "$dir/master.log" | head -n 20
	status=1
	keep=${keep:-1}
fi
[ $status -eq 0 ] && echo "PASS"
exit $status
