#!/bin/sh
# Send every outbound TCP connection of the pod to lictor's egress proxy (transparent mode),
# except lictor's own (its uid), loopback and DNS. Runs in the pod's network namespace, as
# the init container, before the agent starts. Idempotent: a restarted pod starts clean.
set -eu
port="${LICTOR_EGRESS_PORT:-8080}"
uid="${LICTOR_UID:-1337}"
chain=LICTOR_EGRESS

redirect() {  # $1: iptables or ip6tables; $2: the loopback range
  "$1" -t nat -N "$chain" 2>/dev/null || "$1" -t nat -F "$chain"
  "$1" -t nat -A "$chain" -m owner --uid-owner "$uid" -j RETURN   # lictor's upstream calls
  "$1" -t nat -A "$chain" -d "$2" -j RETURN                       # loopback (lictor, probes)
  "$1" -t nat -A "$chain" -p tcp --dport 53 -j RETURN             # DNS over TCP
  "$1" -t nat -A "$chain" -p tcp -j REDIRECT --to-ports "$port"
  "$1" -t nat -C OUTPUT -p tcp -j "$chain" 2>/dev/null \
    || "$1" -t nat -A OUTPUT -p tcp -j "$chain"
}
redirect iptables 127.0.0.0/8
# IPv6 too, where the pod has it (lictor then needs `egress.host: "::"` or a v6 listener)
if [ -e /proc/net/if_inet6 ] && command -v ip6tables >/dev/null; then
  redirect ip6tables ::1/128
fi
echo "lictor: outbound TCP of this pod now goes to port $port (uid $uid excluded)"
