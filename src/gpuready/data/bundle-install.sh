#!/usr/bin/env bash
# Build and certify @ENV@ from this bundle, with no network: written by `gpuready bundle`.
#
#   bash install.sh --prefix DIR [--allow-cpu] [--level N] [other `gpuready setup` flags]
#
# Needs only bash and Python @PYTHON@ (python@PYTHON@ or python3). Every file is checked against
# manifest.json first; uv (from the bundled wheel) installs gpuready into a temporary virtual
# environment from tool/, and `gpuready setup --bundle` builds the environment from env/ and
# wheels/ offline (no index, --find-links only), then certifies it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage() {
    sed -n '4p' "$here/install.sh" | sed 's/^#   //' >&2
}

prefix=""
args=()
while [ "$#" -gt 0 ]; do
    case "$1" in
        --prefix) [ "$#" -ge 2 ] || { echo "install.sh: --prefix needs a directory" >&2; exit 2; }
                  prefix="$2"; shift 2 ;;
        --prefix=*) prefix="${1#--prefix=}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) args+=("$1"); shift ;;
    esac
done
if [ -z "$prefix" ]; then
    echo "install.sh: --prefix DIR is required (where the environment goes)" >&2
    usage
    exit 2
fi

python=""
for candidate in "python@PYTHON@" python3; do
    if command -v "$candidate" >/dev/null 2>&1 \
       && [ "$("$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "@PYTHON@" ]; then
        python="$(command -v "$candidate")"
        break
    fi
done
if [ -z "$python" ]; then
    echo "install.sh: this bundle's environment is for Python @PYTHON@, and neither python@PYTHON@ nor a" \
         "python3 of that version is on PATH; nothing was installed" >&2
    exit 1
fi

"$python" "$here/verify.py" "$here" || exit 1

work="$(mktemp -d "${TMPDIR:-/tmp}/gpuready-bundle.XXXXXX")"
trap 'rm -rf "$work"' EXIT
"$python" - "$here/tool/@UV_WHEEL@" "$work/uv" <<'PY'
import os, sys, zipfile
wheel, target = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as archive:
    member = next(n for n in archive.namelist() if n.endswith(".data/scripts/uv"))
    with archive.open(member) as source, open(target, "wb") as out:
        out.write(source.read())
os.chmod(target, 0o755)
PY

export UV_OFFLINE=1 UV_NO_CONFIG=1 UV_PYTHON_DOWNLOADS=never UV_CACHE_DIR="$work/cache"
"$work/uv" venv --quiet --no-project --python "$python" "$work/tool"
"$work/uv" pip install --quiet --no-index --find-links "$here/tool" --require-hashes --no-deps \
    --python "$work/tool/bin/python" -r "$here/tool/requirements.txt"
"$work/tool/bin/gpuready" setup --bundle "$here" --prefix "$prefix" --yes \
    ${args[@]+"${args[@]}"}
