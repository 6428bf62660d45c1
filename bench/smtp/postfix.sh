#!/usr/bin/env bash
# bench/smtp/postfix.sh: a throwaway Postfix on 127.0.0.1, for running bench/smtp/run.sh
# side by side against Postfix on the same machine with the same load.
#
#   bench/smtp/postfix.sh start [PORT]   # PORT defaults to 32525; prints the -t/-m arguments
#   bench/smtp/postfix.sh stop
#
# It needs root and Debian's postfix package (installed by .ci/run, never started by it).
# The instance lives in /tmp/postern-postfix-bench: its own config directory, queue and a
# virtual mailbox demo@example.test delivered as Maildir by Postfix's virtual(8) agent,
# fsync on (Postfix's defaults), no DNS lookups, no chroot. Then:
#
#   bench/smtp/run.sh -t 127.0.0.1:32525 -m /tmp/postern-postfix-bench/mail/example.test/demo/new
set -euo pipefail
top=/tmp/postern-postfix-bench
conf=$top/etc
cmd=${1:-}
port=${2:-32525}

case $cmd in
start)
	[ "$(id -u)" = 0 ] || { echo "postfix.sh needs root"; exit 1; }
	command -v postfix >/dev/null || PATH=$PATH:/usr/sbin
	# A Postfix left running from an earlier start would lose its queue under it.
	[ -d "$conf" ] && postfix -c "$conf" stop 2>/dev/null || true
	rm -rf "$top"
	mkdir -p "$conf" "$top/queue" "$top/data" "$top/mail/example.test/demo"
	chown -R postfix "$top/data"
	chown -R nobody:nogroup "$top/mail"
	cp /etc/postfix/dynamicmaps.cf "$conf/" 2>/dev/null || true
	cat >"$conf/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $top/queue
data_directory = $top/data
mail_owner = postfix
setgid_group = postdrop
myhostname = bench.localhost
mydomain = localhost
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
disable_dns_lookups = yes
smtp_host_lookup = native
smtpd_peername_lookup = no
virtual_mailbox_domains = example.test
virtual_mailbox_base = $top/mail
virtual_mailbox_maps = inline:{ demo@example.test=example.test/demo/ }
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
maillog_file = $top/maillog
maillog_file_prefixes = $top
alias_maps =
alias_database =
CF
	sed -e "s/^smtp      inet/$port      inet/" -e 's/^\(\S\+\s\+\S\+\s\+\S\+\s\+\S\+\s\+\)y/\1n/' \
		/etc/postfix/master.cf >"$conf/master.cf"
	grep -q "^postlog" "$conf/master.cf" || true
	# Postfix runs a config directory other than its default one only when the default
	# main.cf lists it (and says nothing but exit 1 otherwise, to a syslog that may be absent).
	touch /etc/postfix/main.cf
	grep -q "^alternate_config_directories = $conf" /etc/postfix/main.cf ||
		echo "alternate_config_directories = $conf" >>/etc/postfix/main.cf
	postfix -c "$conf" check
	postfix -c "$conf" start
	echo "Postfix listening on 127.0.0.1:$port; run:"
	echo "  bench/smtp/run.sh -t 127.0.0.1:$port -m $top/mail/example.test/demo/new"
	;;
stop)
	postfix -c "$conf" stop 2>/dev/null || PATH=$PATH:/usr/sbin postfix -c "$conf" stop
	;;
*)
	sed -n '2,13p' "$0"
	exit 2
	;;
esac
