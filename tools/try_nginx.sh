#!/usr/bin/env bash
# Two phi4-server replicas behind nginx (docs/deploy.md's configuration), tried for real:
# requests through nginx reach both replicas, a stream passes through, and the second replica's
# private memory shows that the model's pages are shared.
#   tools/try_nginx.sh [MODEL]   (default: the demo model; needs `make server` and nginx)
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-models/phi4-demo-q8_0.gguf}
SERVER=Server/.build/release/phi4-server
command -v nginx >/dev/null || { echo "needs nginx: apt-get install -y nginx" >&2; exit 1; }
test -x "$SERVER" || make -s server
DIR=$(mktemp -d)
trap 'kill $(cat "$DIR"/*.pid 2>/dev/null) 2>/dev/null || true; nginx -p "$DIR" -c nginx.conf -s stop 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$DIR"' EXIT
for p in 18081 18082; do
    "$SERVER" --model "$MODEL" --alias phi4 --port $p --parallel 2 --ctx 1024 -t 1 >"$DIR/server-$p.log" 2>&1 &
    echo $! >"$DIR/server-$p.pid"
done
cat >"$DIR/nginx.conf" <<CONF
worker_processes 1;
pid $DIR/nginx.pid;
error_log $DIR/error.log;
events { worker_connections 256; }
http {
    access_log $DIR/access.log;
    client_body_temp_path $DIR; proxy_temp_path $DIR; fastcgi_temp_path $DIR; uwsgi_temp_path $DIR; scgi_temp_path $DIR;
    upstream phi4 {
        least_conn;
        server 127.0.0.1:18081 max_fails=2 fail_timeout=10s;
        server 127.0.0.1:18082 max_fails=2 fail_timeout=10s;
        keepalive 16;
    }
    server {
        listen 127.0.0.1:18080;
        client_max_body_size 1m;
        location / {
            proxy_pass http://phi4;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 600s;
            proxy_next_upstream error timeout http_429 http_503;
        }
    }
}
CONF
for p in 18081 18082; do
    for _ in $(seq 600); do curl -sf "http://127.0.0.1:$p/health" >/dev/null && break; sleep 0.2; done
done
nginx -p "$DIR" -c nginx.conf
sleep 0.5
# Concurrent requests through nginx.
clients=()
for i in $(seq 8); do
    curl -sf http://127.0.0.1:18080/v1/completions -H 'Content-Type: application/json' \
        -d "{\"prompt\": \"def f$i(\", \"max_tokens\": 8}" >"$DIR/out-$i.json" &
    clients+=($!)
done
wait "${clients[@]}"
for i in $(seq 8); do grep -q '"text_completion"' "$DIR/out-$i.json" || { echo "request $i failed"; exit 1; }; done
a=$(curl -s http://127.0.0.1:18081/metrics | awk '/^phi4_requests_total/ {print $2}')
b=$(curl -s http://127.0.0.1:18082/metrics | awk '/^phi4_requests_total/ {print $2}')
echo "requests served: replica 1 $a, replica 2 $b"
awk -v a="$a" -v b="$b" 'BEGIN { exit !(a >= 1 && b >= 1) }' || { echo "one replica got nothing"; exit 1; }
# A stream through nginx arrives as events.
events=$(curl -sN http://127.0.0.1:18080/v1/completions -H 'Content-Type: application/json' \
    -d '{"prompt": "import os\n", "max_tokens": 8, "stream": true}' | grep -c '^data: ')
echo "stream through nginx: $events events"
[ "$events" -ge 3 ]
# Memory: the second replica's resident and private memory (shared model pages are not private).
pid=$(cat "$DIR/server-18082.pid")
awk '/^Rss:|^Private_Clean:|^Private_Dirty:|^Shared_Clean:/ {printf "replica 2 %s %.1f MB\n", $1, $2 / 1024}' "/proc/$pid/smaps_rollup"
echo "model file: $(du -m "$MODEL" | cut -f1) MB; nginx over two replicas: ok"
