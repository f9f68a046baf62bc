#!/usr/bin/env bash
# gpuready bootstrap: from a bare machine (a Python 3.10+ and, for --repo, git) to a certified
# TensorFlow GPU environment. It installs gpuready into its own virtual environment, runs
# `gpuready setup --yes` with the flags after `--`, and leaves a result an operator or a
# script can read:
#
#   <state-dir>/SUCCESS or <state-dir>/FAILED   a one-line marker (only one of them exists)
#   <state-dir>/result.json                      {"status", "step", "exit_code", "certificate", "log", ...}
#   <log>                                        everything this run printed
#   <certificate>                                a copy of the certificate (with --certificate)
#
# The exit code is setup's (0 certified, 1 failed, 3 CPU only), or 2 for bad usage, or 1 when
# a step before setup fails. `gpuready cloud.user-data` embeds this script in cloud-init
# user-data for first boot on a cloud GPU instance.
#
# Usage:
#   bootstrap.sh (--package SPEC | --repo URL [--ref REF] | --bundle-file TAR | --bundle-url URL
#                [--bundle-sha256 HEX]) [--venv DIR] [--prefix DIR]
#                [--state-dir DIR] [--log FILE] [--certificate FILE] [--index-url URL]
#                [--interpreter PYTHON] [--prom-dir DIR] [--allow-insecure-source] [-- SETUP FLAGS...]
#
# Plain-text sources (an http:// or git:// repository, an http:// package, an http:// bundle
# without --bundle-sha256) are refused: anyone on the way could hand over other code, which then
# runs as root. --allow-insecure-source accepts them (a trusted network, a test).
#
# With a bundle (`gpuready bundle --tar`, copied to the host or fetched from an internal mirror),
# nothing reaches the package index: the bundle's install.sh builds and certifies offline.
# The certificate's Prometheus metrics go to <prom-dir>/gpuready.prom when that folder exists
# (default: node_exporter's textfile collector, /var/lib/node_exporter/textfile_collector).
# e.g.
#   bash scripts/bootstrap.sh --repo https://github.com/OWNER/gpuready.git -- --flavor pip
set -uo pipefail

usage() {
    cat >&2 <<'EOF'
usage: bootstrap.sh (--package SPEC | --repo URL [--ref REF] | --bundle-file TAR | --bundle-url URL
                    [--bundle-sha256 HEX]) [--venv DIR] [--prefix DIR]
                    [--state-dir DIR] [--log FILE] [--certificate FILE] [--index-url URL]
                    [--interpreter PYTHON] [--prom-dir DIR] [--allow-insecure-source]
                    [-- SETUP FLAGS...]
Installs gpuready into its own virtual environment and runs `gpuready setup --yes` with the
flags after `--`. Result: <state-dir>/SUCCESS or FAILED, <state-dir>/result.json, the log.
EOF
    exit 2
}

die_usage() {
    echo "bootstrap: $*" >&2
    exit 2
}

data_home=${XDG_DATA_HOME:-${HOME:-/root}/.local/share}
state_home=${XDG_STATE_HOME:-${HOME:-/root}/.local/state}
package="" repo="" ref="" prefix="" certificate="" index_url=""
venv="$data_home/gpuready/bootstrap-venv"
state_dir="$state_home/gpuready"
log=""
interpreter=python3
setup_args=()
bundle_file="" bundle_url="" bundle_sha256=""
prom_dir=/var/lib/node_exporter/textfile_collector
allow_insecure=""
clone_dir=""

need_value() {
    if [ "$#" -lt 2 ] || [ -z "$2" ]; then die_usage "$1 needs a value"; fi
    case "$2" in -*) die_usage "$1: a value may not start with '-': $2" ;; esac
}

while [ "$#" -gt 0 ]; do
    case "$1" in
        --package) need_value "$@"; package=$2; shift 2 ;;
        --repo) need_value "$@"; repo=$2; shift 2 ;;
        --ref) need_value "$@"; ref=$2; shift 2 ;;
        --venv) need_value "$@"; venv=$2; shift 2 ;;
        --prefix) need_value "$@"; prefix=$2; shift 2 ;;
        --state-dir) need_value "$@"; state_dir=$2; shift 2 ;;
        --log) need_value "$@"; log=$2; shift 2 ;;
        --certificate) need_value "$@"; certificate=$2; shift 2 ;;
        --index-url) need_value "$@"; index_url=$2; shift 2 ;;
        --interpreter) need_value "$@"; interpreter=$2; shift 2 ;;
        --bundle-file) need_value "$@"; bundle_file=$2; shift 2 ;;
        --bundle-url) need_value "$@"; bundle_url=$2; shift 2 ;;
        --bundle-sha256) need_value "$@"; bundle_sha256=$2; shift 2 ;;
        --prom-dir) need_value "$@"; prom_dir=$2; shift 2 ;;
        --allow-insecure-source) allow_insecure=1; shift ;;
        -h|--help) usage ;;
        --) shift; setup_args=("$@"); break ;;
        *) die_usage "unknown option $1 (setup's flags go after --)" ;;
    esac
done

sources=0
for given in "$package" "$repo" "$bundle_file" "$bundle_url"; do [ -n "$given" ] && sources=$((sources + 1)); done
if [ "$sources" -ne 1 ]; then
    die_usage "give exactly one of --package SPEC, --repo URL, --bundle-file TAR, --bundle-url URL"
fi
if [ -n "$bundle_sha256" ] && [ -z "$bundle_url$bundle_file" ]; then die_usage "--bundle-sha256 needs a bundle"; fi
if [ -n "$bundle_sha256" ] && ! [[ "$bundle_sha256" =~ ^[0-9a-f]{64}$ ]]; then
    die_usage "--bundle-sha256: $bundle_sha256 is not a sha256 (64 hex digits)"
fi
if [ -n "$bundle_url$bundle_file" ] && [ -z "$prefix" ]; then die_usage "a bundle needs --prefix"; fi
if [ -n "$ref" ] && [ -z "$repo" ]; then die_usage "--ref needs --repo"; fi
if [ -n "$certificate" ] && [ -z "$prefix" ]; then
    die_usage "--certificate needs --prefix (the certificate is copied from <prefix>/gpuready/)"
fi
if [ -z "$allow_insecure" ]; then
    case "$repo" in
        http://*|git://*) die_usage "--repo $repo is plain text (${repo%%://*}://): anyone on the way can hand over other code; use https:// or ssh, or pass --allow-insecure-source" ;;
    esac
    case "$package" in
        http://*|*@\ http://*|*@http://*) die_usage "--package $package is fetched over plain http: anyone on the way can hand over other code; use https://, or pass --allow-insecure-source" ;;
    esac
    case "$bundle_url" in
        http://*) [ -n "$bundle_sha256" ] ||
            die_usage "--bundle-url $bundle_url is plain http: use https, give --bundle-sha256, or pass --allow-insecure-source" ;;
    esac
fi
log=${log:-$state_dir/bootstrap.log}

mkdir -p "$state_dir" "$(dirname "$log")" || { echo "bootstrap: cannot create $state_dir" >&2; exit 1; }
rm -f "$state_dir/SUCCESS" "$state_dir/FAILED" "$state_dir/result.json"

json_str() {
    local s=${1//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\n'/\\n}
    s=${s//$'\t'/\\t}
    printf '"%s"' "$s"
}

step="start"
setup_rc=""
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)

finish() {
    local rc=$1 copied="" status=failed
    if [ -n "$certificate" ] && [ -f "$prefix/gpuready/certificate.json" ]; then
        mkdir -p "$(dirname "$certificate")" &&
            cp "$prefix/gpuready/certificate.json" "$certificate.tmp.$$" &&
            mv -f "$certificate.tmp.$$" "$certificate" && copied=$certificate
    fi
    [ "$rc" -eq 0 ] && status=success
    {
        printf '{\n  "status": %s,\n  "step": %s,\n  "exit_code": %s,\n' \
            "$(json_str "$status")" "$(json_str "$step")" "$rc"
        printf '  "setup_exit_code": %s,\n  "certificate": %s,\n  "log": %s,\n' \
            "${setup_rc:-null}" "$([ -n "$copied" ] && json_str "$copied" || echo null)" "$(json_str "$log")"
        printf '  "started": %s,\n  "finished": %s\n}\n' \
            "$(json_str "$started")" "$(json_str "$(date -u +%Y-%m-%dT%H:%M:%SZ)")"
    } > "$state_dir/result.json.tmp" && mv -f "$state_dir/result.json.tmp" "$state_dir/result.json"
    if [ "$status" = success ]; then
        echo "certified; certificate ${copied:-under ${prefix:-the environment}/gpuready/}; log $log" \
            > "$state_dir/SUCCESS"
        echo "== gpuready bootstrap: SUCCESS"
    else
        echo "failed at step '$step' with exit code $rc; log $log" > "$state_dir/FAILED"
        echo "== gpuready bootstrap: FAILED at step '$step' (exit $rc); see $log"
    fi
    exit "$rc"
}

fail() {
    echo "bootstrap: $*"
    finish 1
}

# A bundle: fetch it (--bundle-url) or take it (--bundle-file), check its sha256 when given,
# unpack it, and let its install.sh set up with no network.
from_bundle() {
    step="bundle"
    local tarball=$bundle_file dest="$state_dir/bundle"
    if [ -n "$bundle_url" ]; then
        tarball="$state_dir/bundle.tar"
        echo "== fetching the bundle $bundle_url"
        "$interpreter" - "$bundle_url" "$tarball.partial" <<'PY' || fail "could not fetch $bundle_url"
import shutil, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=60) as response, open(sys.argv[2], "wb") as out:
    shutil.copyfileobj(response, out, 1 << 20)
PY
        mv -f "$tarball.partial" "$tarball"
    fi
    [ -f "$tarball" ] || fail "no bundle file at $tarball"
    if [ -n "$bundle_sha256" ]; then
        local got
        got=$("$interpreter" -c 'import hashlib, sys; h = hashlib.sha256()
with open(sys.argv[1], "rb") as f:
    for b in iter(lambda: f.read(1 << 20), b""): h.update(b)
print(h.hexdigest())' "$tarball") || fail "could not read $tarball"
        [ "$got" = "$bundle_sha256" ] || fail "$tarball has sha256 $got, not the $bundle_sha256 given"
    fi
    rm -rf "$dest" && mkdir -p "$dest" || fail "cannot create $dest"
    tar -xf "$tarball" -C "$dest" || fail "could not unpack $tarball"
    local script
    script=$(find "$dest" -mindepth 2 -maxdepth 2 -name install.sh | head -n 1)
    [ -n "$script" ] || fail "$tarball holds no bundle (no install.sh at its top)"
    step="setup"
    local cmd=(bash "$script" --prefix "$prefix" ${setup_args[@]+"${setup_args[@]}"})
    echo "== ${cmd[*]}"
    "${cmd[@]}"
    setup_rc=$?
    [ "$setup_rc" -eq 3 ] && echo "bootstrap: setup certified the CPU only (exit 3); pass --allow-cpu to accept that"
    finish "$setup_rc"
}

main() {
    # main runs in the pipeline's subshell: the trap is set here, where the clone is made, and
    # removes it however the run ends (a failed clone or install included).
    trap '[ -n "$clone_dir" ] && rm -rf "$clone_dir"' EXIT
    echo "== gpuready bootstrap $started on $(hostname 2>/dev/null || echo unknown)"

    step="python"
    "$interpreter" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null ||
        fail "$interpreter is missing or older than Python 3.10 (gpuready needs 3.10+; pass --interpreter PATH)"
    echo "== Python: $("$interpreter" -c 'import sys; print(sys.version.split()[0], sys.executable)')"

    [ -d "$prom_dir" ] && setup_args+=(--prom "$prom_dir/gpuready.prom")
    if [ -n "$bundle_url$bundle_file" ]; then
        from_bundle
        return
    fi

    step="venv"
    if [ ! -x "$venv/bin/python" ]; then
        "$interpreter" -m venv "$venv" ||
            fail "could not create a virtual environment in $venv (Debian/Ubuntu: apt-get install python3-venv)"
    fi

    if [ -n "$index_url" ]; then
        export PIP_INDEX_URL="$index_url" UV_INDEX_URL="$index_url" INVOKE_GPUREADY_INDEX_URL="$index_url"
    fi

    step="install"
    local target=$package src=""
    if [ -n "$repo" ]; then
        command -v git >/dev/null 2>&1 || fail "--repo needs git, which is not installed"
        src=$(mktemp -d "${TMPDIR:-/tmp}/gpuready-src.XXXXXX") || fail "no temporary directory"
        clone_dir=$src
        local clone=(git clone --quiet --depth 1)
        [ -n "$ref" ] && clone+=(--branch "$ref")
        echo "== git clone $repo${ref:+ ($ref)}"
        "${clone[@]}" -- "$repo" "$src/gpuready" || fail "could not clone $repo"
        target="$src/gpuready"
    fi
    echo "== installing gpuready from $target into $venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade -- "$target" ||
        fail "could not install gpuready from $target"
    [ -n "$src" ] && rm -rf "$src"
    [ -x "$venv/bin/gpuready" ] || fail "$target did not install the gpuready command"

    step="setup"
    local cmd=("$venv/bin/gpuready" setup --yes)
    [ -n "$prefix" ] && cmd+=(--prefix "$prefix")
    cmd+=(${setup_args[@]+"${setup_args[@]}"})
    echo "== ${cmd[*]}"
    "${cmd[@]}"
    setup_rc=$?
    [ "$setup_rc" -eq 3 ] && echo "bootstrap: setup certified the CPU only (exit 3); pass --allow-cpu to accept that"
    finish "$setup_rc"
}

# Everything main prints goes to the terminal (or cloud-init's log) and to $log; the pipeline
# waits for tee, so the log is complete when this script exits.
main 2>&1 | tee -a "$log"
exit "${PIPESTATUS[0]}"
