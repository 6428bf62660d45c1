#!/usr/bin/env bash
# Start Dovecot (apt-get install dovecot-imapd) from bench/imap/dovecot.conf on
# 127.0.0.1:19143 (plain/STARTTLS) and 127.0.0.1:19993 (TLS), with one user
# bench@example.test / password "bench" and an empty Maildir under /tmp/postern-dovecot.
# `bench/imap/dovecot.sh stop` stops it.
set -euo pipefail
conf="$(cd "$(dirname "$0")" && pwd)/dovecot.conf"
d=/tmp/postern-dovecot
if [ "${1:-}" = stop ]; then
	dovecot -c "$conf" stop || true
	exit 0
fi
dovecot -c "$conf" stop 2>/dev/null || true
sleep 1
rm -rf "$d"
mkdir -p "$d/run" "$d/state" "$d/home/bench@example.test"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
	-subj "/CN=localhost" -keyout "$d/key.pem" -out "$d/cert.pem" 2>/dev/null
echo 'bench@example.test:{PLAIN}bench' > "$d/passwd"
chown -R nobody:nogroup "$d/home"
dovecot -c "$conf" </dev/null >>"$d/start.log" 2>&1
for i in $(seq 50); do
	if exec 3<>/dev/tcp/127.0.0.1/19143 2>/dev/null; then
		exec 3<&-
		echo "dovecot: 127.0.0.1:19143 and :19993, user bench@example.test password bench, master pid $(cat $d/run/master.pid)"
		exit 0
	fi
	sleep 0.2
done
echo "dovecot did not start; see $d/dovecot.log" >&2
exit 1
