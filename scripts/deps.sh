#!/bin/sh
# Install what building and testing oxwsgi needs on Debian 12, skipping what is present.
# Idempotent; needs root (or sudo) only when something is missing.
set -eu

PACKAGES="apache2 apache2-dev nginx nginx-dev libclang-dev clang pkg-config \
libpcre2-dev zlib1g-dev libssl-dev python3.11 python3.11-dev python3.11-venv \
curl libapache2-mod-wsgi-py3 libapache2-mod-python"
# For `make bench` only.
if [ "${1:-}" = "--bench" ]; then
    # nghttp2-client: h2load (the h2 workload); libev-dev + gcc: bjoern's build (PyPI sdist).
    PACKAGES="$PACKAGES wrk uwsgi uwsgi-plugin-python3 nghttp2-client libev-dev gcc openssl"
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
    # Installing apache2 and nginx would start Debian's own services, both on port 80: the
    # second one fails to bind and apt reports an error. oxwsgi never uses those services
    # (tests and `make serve` run private configs on their own ports), so keep them from
    # starting during the install with a temporary policy-rc.d (the Debian way).
    policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        policy=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
        $SUDO chmod 755 "$policy"
        trap '$SUDO rm -f "$policy"' EXIT
    fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
    # libapache2-mod-python (the reference of tests/apache/test_modpython*.py, loaded from
    # the tests' own configurations) enables itself in Debian's apache2, where it cannot
    # live beside mod_wsgi: leave Debian's own configuration as it was.
    case "$missing" in
        *libapache2-mod-python*) $SUDO a2dismod -q -f python >/dev/null 2>&1 || true ;;
    esac
fi
command -v cargo >/dev/null || { echo "oxwsgi: cargo (Rust) is required: https://rustup.rs" >&2; exit 1; }
# `make lint` (part of `make test`) needs rustfmt and clippy.
for c in fmt clippy; do
    cargo "$c" --version >/dev/null 2>&1 || {
        echo "oxwsgi: cargo $c is missing: rustup component add $([ $c = fmt ] && echo rustfmt || echo clippy)" >&2
        exit 1
    }
done
