#!/usr/bin/env bash
# Makes sure a Redis answers at the URL given (redis://host:port/db): when
# nothing answers, starts redis-server there (installing Debian's package if
# it is missing), in-memory only.
set -euo pipefail
url=${1:-redis://127.0.0.1:6379/0}
hostport=${url#redis://}; hostport=${hostport#*@}; hostport=${hostport%%/*}
host=${hostport%%:*}; port=${hostport##*:}
[ "$port" = "$hostport" ] && port=6379

ping() {
  local reply
  reply=$( { exec 3<>"/dev/tcp/$host/$port" && printf 'PING\r\n' >&3 && timeout 2 head -c 5 <&3; } 2>/dev/null ) || true
  [[ "$reply" == +PONG* || "$reply" == -NOAU* ]]
}

if ping; then echo "==> redis: answering at $host:$port"; exit 0; fi
if [ "$host" != 127.0.0.1 ] && [ "$host" != localhost ]; then
  echo "redis: nothing answers at $host:$port and it is not local; start it or set REDIS_URL" >&2; exit 1
fi
if ! command -v redis-server >/dev/null; then
  echo "==> redis: redis-server missing, installing Debian package 'redis-server'"
  "$(dirname "$0")/apt-install.sh" redis-server
fi
dir=$(mktemp -d /tmp/usher-redis.XXXXXX)
echo "==> redis: starting redis-server on $host:$port (in memory, data dir $dir)"
redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
  --dir "$dir" --logfile "$dir/redis.log"
for _ in $(seq 50); do ping && exit 0; sleep 0.1; done
echo "redis: started but not answering at $host:$port; see $dir/redis.log" >&2; exit 1
