#!/usr/bin/env bash
# Installs libphi4 the way a user without a toolchain does, in minimal Debian roots built with
# debootstrap (Debian's packages only), and checks the outputs equal the development build's:
#
#  1. bookworm (glibc 2.36) with python3, python3-venv, gcc, libc6-dev and pkg-config; no Swift,
#     no OpenBLAS. The wheel (make wheel) is pip-installed into a venv; a greedy generation on the
#     demo model through Python, through the wheel's `phi4` command, through its `phi4-server` (asked
#     by the openai client) and through `phi4 -hf` (downloaded by its phi4-hub from a local Hub)
#     must equal the development build's. The SDK tarball (make dist) is unpacked; examples/simple.c is compiled with
#     pkg-config against it and its greedy token ids must equal simple.c's built against lib/.
#  2. bullseye (glibc 2.31, older than the wheel's manylinux_2_35 tag) with python3-pip: pip must
#     refuse the wheel ("not a supported wheel on this platform") and nothing may be installed.
#
# Needs root (debootstrap, chroot, mounting /proc) and network access to the Debian mirror;
# the roots are kept under .build-roots/ for the next run. Run before every release:
#   sudo bash tools/clean_root_check.sh         (builds the wheel and the tarball first)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT_DIR=$PWD
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap; }

bash scripts/make-wheel.sh >/dev/null
bash scripts/make-dist.sh >/dev/null
make -s lib >/dev/null
swift build -c release --product phi4 >/dev/null
WHEEL=$(ls dist/phi4-*-manylinux*_x86_64.whl)
TARBALL=$(ls dist/phi4-*-linux-x86_64.tar.gz)
MODEL=models/phi4-demo-q8_0.gguf
PROMPT="def fibonacci(n):"

# The development build's answers.
want_cli=$(.build/release/phi4 generate --model $MODEL --prompt "$PROMPT" --greedy --max-tokens 24 -t 2 2>/dev/null)
want_py=$(PHI4_LIBRARY="$ROOT_DIR/lib/libphi4.so.1" PYTHONPATH="$ROOT_DIR/bindings/python" python3 -c \
    "import phi4; print(phi4.Model('$MODEL').generate('$PROMPT', max_tokens=24, temperature=0))")
tmp=$(mktemp -d)
cc examples/c/simple.c -I include -L lib -lphi4 -Wl,-rpath,"$ROOT_DIR/lib" -o "$tmp/simple"
IDS=$(.build/release/phi4 tokenize --tokenizer Tests/Phi4Tests/Fixtures/tokenizer/phi4 "$PROMPT" | tr -d '[]')
want_c=$("$tmp/simple" $MODEL --ids "$IDS" 24 2>/dev/null)
rm -rf "$tmp"

fail=0
check() {  # name, got, want
    if [ "$2" == "$3" ]; then echo "ok   $1"; else echo "FAIL $1"; echo "  got:  $2"; echo "  want: $3"; fail=1; fi
}
make_root() {  # suite, packages
    local dir=.build-roots/$1
    if [ ! -x "$dir/usr/bin/python3" ]; then
        rm -rf "$dir"
        mkdir -p .build-roots
        debootstrap --variant=minbase --include="$2" "$1" "$dir" "$MIRROR" >".build-roots/$1.log" 2>&1
    fi
    mountpoint -q "$dir/proc" || mount -t proc proc "$dir/proc"
    rm -rf "$dir/check"
    mkdir -p "$dir/check"
    echo "$dir"
}
cleanup() {
    for d in .build-roots/bookworm .build-roots/bullseye; do
        if [ -d "$d/proc" ] && mountpoint -q "$d/proc"; then umount "$d/proc"; fi
    done
}
trap cleanup EXIT

# 1. bookworm: the wheel and the SDK.
R=$(make_root bookworm python3,python3-venv,gcc,libc6-dev,pkg-config)
cp "$WHEEL" "$TARBALL" $MODEL "$R/check/"
cp examples/c/simple.c "$R/check/"
if chroot "$R" sh -c 'command -v swift || ls /usr/lib/x86_64-linux-gnu/libopenblas* ' >/dev/null 2>&1; then
    echo "FAIL the bookworm root has Swift or OpenBLAS"; fail=1
fi
w=$(basename "$WHEEL"); t=$(basename "$TARBALL" .tar.gz); m=$(basename $MODEL)
chroot "$R" sh -c "cd /check && python3 -m venv venv && venv/bin/pip install -q --no-index $w" >/dev/null
got_py=$(chroot "$R" sh -c "cd /check && venv/bin/python -c \"import phi4; print(phi4.Model('$m').generate('$PROMPT', max_tokens=24, temperature=0))\"" || true)
check "wheel: Python generate equals the development build" "$got_py" "$want_py"
got_cli=$(chroot "$R" sh -c "cd /check && PATH=/check/venv/bin:\$PATH phi4 generate --model $m --prompt '$PROMPT' --greedy --max-tokens 24 -t 2 2>/dev/null" || true)
check "wheel: the phi4 command equals the development build" "$got_cli" "$want_cli"
got_c=$(chroot "$R" sh -c "cd /check && tar xzf $t.tar.gz && export PKG_CONFIG_PATH=/check/$t/lib/pkgconfig && cc simple.c \$(pkg-config --cflags --libs phi4) -o simple && ./simple $m --ids $IDS 24" 2>/dev/null || true)
check "tarball: simple.c built with pkg-config equals the development build" "$got_c" "$want_c"

# The wheel's phi4-server answers the openai client (run outside the root, over loopback), and its
# phi4-hub downloads a model by name from a local Hub (Server/Tests/hub, TLS with a test CA).
VPY=.build-srvpy/bin/python  # the server tests' venv: openai, huggingface_hub (bash scripts/test-server.sh)
tmp=$(mktemp -d)
PORT=$("$VPY" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
chroot "$R" sh -c "cd /check && PATH=/check/venv/bin:\$PATH exec phi4-server --model $m --port $PORT --ctx 256 -t 2" \
    >"$tmp/server.log" 2>&1 &
SPID=$!
for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:$PORT/health" 2>/dev/null | grep -q '"ok"' && break
    sleep 0.2
done
got_srv=$("$VPY" -c "import openai; c = openai.OpenAI(base_url='http://127.0.0.1:$PORT/v1', api_key='none'); \
print(c.completions.create(model=c.models.list().data[0].id, prompt='$PROMPT', max_tokens=24, temperature=0).choices[0].text)" || true)
kill $SPID 2>/dev/null || true
wait $SPID 2>/dev/null || true
check "wheel: phi4-server answers the openai client like the development build" "$got_srv" "$want_cli"
cat >"$tmp/hub.py" <<PY
import sys, time
sys.path.insert(0, "Server/Tests/hub")
from hub_server import Hub
h = Hub({"tester/phi-4-GGUF": {"files": {"phi-4-Q8_0.gguf": "$MODEL"}}}, "$tmp")
print(h.endpoint, flush=True)
time.sleep(600)
PY
"$VPY" "$tmp/hub.py" >"$tmp/hub.out" &
HPID=$!
for _ in $(seq 100); do [ -s "$tmp/hub.out" ] && break; sleep 0.1; done
cp "$tmp/ca.pem" "$R/check/ca.pem"
[ -s "$R/etc/hosts" ] || cp /etc/hosts "$R/etc/hosts"  # debootstrap's minbase has none: no "localhost"
got_hub=$(chroot "$R" sh -c "cd /check && HF_ENDPOINT=$(cat "$tmp/hub.out") SSL_CERT_FILE=/check/ca.pem HF_HUB_CACHE=/check/hf \
    PATH=/check/venv/bin:\$PATH phi4 generate -hf tester/phi-4-GGUF:Q8_0 --prompt '$PROMPT' --greedy --max-tokens 24 -t 2 2>/dev/null" || true)
kill $HPID 2>/dev/null || true
check "wheel: phi4 -hf downloads through phi4-hub and generates like the development build" "$got_hub" "$want_cli"
rm -rf "$tmp"

# 2. bullseye: pip refuses the wheel cleanly.
R=$(make_root bullseye python3-pip)
cp "$WHEEL" "$R/check/"
set +e
out=$(chroot "$R" sh -c "cd /check && pip3 install --no-index $w" 2>&1)
status=$?
chroot "$R" python3 -c "import phi4" >/dev/null 2>&1
imported=$?
set -e
if [ $status -ne 0 ] && grep -q "is not a supported wheel on this platform" <<<"$out" && [ $imported -ne 0 ]; then
    echo "ok   bullseye (glibc $(chroot "$R" ldd --version | head -1 | awk '{print $NF}')): pip refuses the wheel: $(grep -o "ERROR.*" <<<"$out" | head -1)"
else
    echo "FAIL bullseye: pip status $status, import status $imported"; echo "$out"; fail=1
fi

echo "wheel $(basename "$WHEEL") $(du -m "$WHEEL" | cut -f1) MB, tarball $(basename "$TARBALL") $(du -m "$TARBALL" | cut -f1) MB"
exit $fail
