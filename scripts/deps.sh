#!/bin/sh
# Install what building and testing oxwsgi needs on Debian 12, skipping what is present.
# Idempotent; needs root (or sudo) only when something is missing.
set -eu

PACKAGES="apache2 apache2-dev nginx nginx-dev libclang-dev clang pkg-config \
libpcre2-dev zlib1g-dev libssl-dev python3.11 python3.11-dev python3.11-venv \
curl libapache2-mod-wsgi-py3"
# For `make bench` only.
if [ "${1:-}" = "--bench" ]; then
    PACKAGES="$PACKAGES wrk uwsgi uwsgi-plugin-python3"
fi

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
if [ -n "$missing" ]; then
    echo "oxwsgi: installing:$missing"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -q
    # Installing apache2/nginx starts Debian's own services on port 80; oxwsgi's tests
    # and `make serve` use private configs and their own ports, so that does not matter.
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
fi
command -v cargo >/dev/null || { echo "oxwsgi: cargo (Rust) is required: https://rustup.rs" >&2; exit 1; }
