#!/usr/bin/env bash
# Install everything the test suite needs from this checkout, then run it.
# The README's test command, and exactly what CI runs (.ci/run). Extra arguments go to pytest,
# e.g. `bash scripts/test.sh -m "not e2e and not network"` for the offline unit tests only.
set -euo pipefail
cd "$(dirname "$0")/.."

# System tools some tests drive for real (cloud-init's schema validator, an sshd on loopback,
# and the linter of the shipped shell scripts).
apt_packages=(cloud-init openssh-server shellcheck)
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    missing=()
    for package in "${apt_packages[@]}"; do
        dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
fi

python3 -m venv .venv

# promtool checks the Prometheus metrics and alert rules. It ships in Debian's prometheus package,
# whose installation would start a server: unpack the package into the venv instead.
promtool=.venv/opt/prometheus/usr/bin/promtool
if [ ! -x "$promtool" ] && command -v apt-get >/dev/null 2>&1; then
    download=$(mktemp -d)
    if (cd "$download" && apt-get download prometheus >/dev/null 2>&1); then
        mkdir -p .venv/opt/prometheus
        dpkg-deb -x "$download"/prometheus_*.deb .venv/opt/prometheus
    else
        echo "scripts/test.sh: could not download Debian's prometheus package; the promtool checks skip" >&2
    fi
    rm -rf "$download"
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
# pytest exits 5 when it collects no test: with `exec` that reaches CI as a failure.
exec .venv/bin/python -m pytest "$@"
