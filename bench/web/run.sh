#!/usr/bin/env bash
# bench/web against a fresh Postern development instance:
#
#   bench/web/run.sh [-k] [bench flags...]      e.g. bench/web/run.sh -n 10000 -sessions 1000
#
# Creates an instance in a temporary directory (PORT_BASE, default 30000), starts master,
# waits for httpd, then runs `go run ./bench/web` as demo@example.test with -pid set to
# httpd's pid. Any other flags go to the benchmark (see `go run ./bench/web -h`). -k
# keeps the instance directory.
set -euo pipefail
keep=""
if [ "${1:-}" = -k ]; then keep=1; shift; fi
top=$(cd "$(dirname "$0")/../.." && pwd)
make -C "$top" -s build
dir=$(mktemp -d /tmp/postern-bench-web.XXXXXX)
chmod 755 "$dir"
base=${PORT_BASE:-30000}
out=$("$top/bin/mailctl" -c "$dir/postern.toml" init --dev --port-base "$base")
pass=$(printf '%s\n' "$out" | sed -n 's/.*[Pp]assword:\{0,1\}[[:space:]]\{1,\}\([^[:space:]]\{1,\}\).*/\1/p' | head -1)
printf '%s\n' "$pass" > "$dir/password"
chmod 600 "$dir/password"
"$top/bin/master" -c "$dir/postern.toml" 2>"$dir/master.log" &
master=$!
cleanup() {
	kill -TERM $master 2>/dev/null; wait $master 2>/dev/null || true
	if [ -z "$keep" ]; then rm -rf "$dir"; else echo "instance kept in $dir"; fi
}
trap cleanup EXIT
for _ in $(seq 200); do
	(exec 3<>/dev/tcp/127.0.0.1/$((base + 443))) 2>/dev/null && break
	sleep 0.1
done
httpd=""
for p in $(pgrep -P $master); do
	[ "$(basename "$(readlink /proc/$p/exe)")" = httpd ] && httpd=$p
done
[ -n "$httpd" ] || { echo "httpd is not running"; tail -20 "$dir/master.log"; exit 1; }
cd "$top"
go run ./bench/web -base "$base" -user demo@example.test -password-file "$dir/password" -pid "$httpd" "$@"
