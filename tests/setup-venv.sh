#!/bin/bash
# Create (or refresh) the virtualenv used by the conformance suite.
#
# The venv serves two roles: it runs pytest, and it is the WSGIPythonHome /
# wsgi_python_home of every server under test, so the Apache/nginx workers
# (user www-data) must be able to read it. It is therefore built with Debian's
# /usr/bin/python3.11 (the pyenv python on PATH is unreadable to www-data and
# is not the libpython the modules link).
#
# Idempotent: pip runs only when the hash of requirements.txt differs from the
# stamp left by the previous successful install.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${OXWSGI_TEST_VENV:-/opt/oxwsgi-test-venv}"
python=/usr/bin/python3.11
req="$here/requirements.txt"
stamp="$venv/.oxwsgi-requirements.sha256"

want="$( (sha256sum "$req"; "$python" -VV) | sha256sum | cut -d' ' -f1)"

if [ ! -x "$venv/bin/python" ]; then
    echo "setup-venv: creating $venv" >&2
    umask 022
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv"
fi

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "setup-venv: $venv is up to date" >&2
else
    echo "setup-venv: installing $req into $venv" >&2
    (umask 022 && "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        --root-user-action=ignore -r "$req")
    echo "$want" > "$stamp"
fi

# www-data must read everything inside and traverse every parent directory.
chmod -R a+rX "$venv"
d="$(dirname "$venv")"
while [ "$d" != "/" ]; do
    if [ "$(( 0$(stat -c %a "$d") & 01 ))" -eq 0 ]; then
        echo "setup-venv: chmod o+x $d (the server user must reach the venv)" >&2
        chmod o+x "$d"
    fi
    d="$(dirname "$d")"
done
