#!/usr/bin/env python
"""Which CUDA library can this environment not load? Run by path with the environment's Python.

    python cuda_libs.py

Prints one JSON document. It does not import TensorFlow (it reads TensorFlow's build_info.py
as text to learn which CUDA and cuDNN the build wants), then loads, with ctypes, the NVIDIA
driver (libcuda.so.1) and every library TensorFlow's GPU support needs, in dependency order,
from the environment's site-packages/nvidia/*/lib (pip) or <prefix>/lib (conda) first and the
loader's search path second. The first required library that fails is the one to name.
Standard library only; Python 3.8+.
"""

from __future__ import annotations

import ctypes
import glob
import importlib.util
import json
import os
import re
import sys

# (file stem, soname suffix for CUDA 11, for CUDA 12, required). Dependency order: a library's
# dependencies come before it, so that loading it finds them already loaded (RTLD_GLOBAL).
LIBRARIES = [
    ("libcudart", "so.11.0", "so.12", True),
    ("libnvJitLink", None, "so.12", False),
    ("libcublasLt", "so.11", "so.12", True),
    ("libcublas", "so.11", "so.12", True),
    ("libcufft", "so.10", "so.11", True),
    ("libcurand", "so.10", "so.10", False),
    ("libcusparse", "so.11", "so.12", True),
    ("libcusolver", "so.11", "so.11", True),
    ("libcudnn", "cudnn", "cudnn", True),  # so.<cuDNN major>
    ("libnccl", "so.2", "so.2", False),
    ("libcupti", None, "so.12", False),
]
DRIVER = "libcuda.so.1"
MISSING = re.compile(r"(lib[\w.+-]+\.so[\w.]*): cannot open shared object file")


def build_info():
    """TensorFlow's build facts from its build_info.py, without importing TensorFlow."""
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or not spec.submodule_search_locations:
        return {"found": False}
    root = list(spec.submodule_search_locations)[0]
    info = {"found": True, "path": root}
    path = os.path.join(root, "python", "platform", "build_info.py")
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError:
        info["build_info"] = None
        return info
    info["build_info"] = path
    for key in ("is_cuda_build", "cuda_version", "cudnn_version"):
        match = re.search(r"['\"]%s['\"]\s*,\s*([^)\n]+)\)" % key, text)
        if match:
            value = match.group(1).strip().strip("'\"")
            info[key] = {"True": True, "False": False}.get(value, value)
    return info


def search_dirs():
    """The environment's own library folders: site-packages/nvidia/*/lib, then <prefix>/lib."""
    dirs = []
    for entry in sys.path:
        if entry and os.path.basename(entry) in ("site-packages", "dist-packages"):
            dirs.extend(sorted(glob.glob(os.path.join(entry, "nvidia", "*", "lib"))))
    dirs.append(os.path.join(sys.prefix, "lib"))
    seen, unique = set(), []
    for d in dirs:
        if d not in seen and os.path.isdir(d):
            seen.add(d)
            unique.append(d)
    return unique


def wanted(cuda_major, cudnn_major):
    names = []
    for stem, v11, v12, required in LIBRARIES:
        suffix = v11 if cuda_major == 11 else v12
        if suffix is None:
            continue
        if suffix == "cudnn":
            suffix = "so.%s" % cudnn_major
        names.append(("%s.%s" % (stem, suffix), required))
    return names


def load(name, dirs):
    """Load `name` from the first of `dirs` that has it, else by name through the loader."""
    for directory in dirs:
        path = os.path.join(directory, name)
        if os.path.exists(path):
            try:
                ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
                return {"ok": True, "path": path, "error": None}
            except OSError as exc:
                return {"ok": False, "path": path, "error": str(exc)}
    try:
        ctypes.CDLL(name, mode=ctypes.RTLD_GLOBAL)
        return {"ok": True, "path": "loader search path", "error": None}
    except OSError as exc:
        return {"ok": False, "path": None,
                "error": "%s (not in %s, nor on the loader's search path)"
                         % (exc, ", ".join(dirs) or "the environment")}


def missing_dependency(error, name):
    """The library named by a dlerror, when it is not the one being loaded."""
    match = MISSING.search(error or "")
    if match and match.group(1) != name:
        return match.group(1)
    return None


def probe():
    tf = build_info()
    result = {"python": sys.executable, "prefix": sys.prefix, "tensorflow": tf,
              "search_dirs": search_dirs(), "driver": None, "libraries": [], "first_failure": None,
              "ld_library_path": os.environ.get("LD_LIBRARY_PATH")}
    driver = load(DRIVER, [])
    driver["name"] = DRIVER
    result["driver"] = driver
    if not tf.get("found"):
        result["note"] = "TensorFlow is not installed in this environment"
        return result
    if tf.get("is_cuda_build") is not True:
        result["note"] = "a CPU-only TensorFlow build: it needs no CUDA library"
        return result
    cuda_major = int((re.findall(r"\d+", str(tf.get("cuda_version") or "12")) or ["12"])[0])
    cudnn_major = (re.findall(r"\d+", str(tf.get("cudnn_version") or "")) or ["9" if cuda_major >= 12 else "8"])[0]
    for name, required in wanted(cuda_major, cudnn_major):
        entry = load(name, result["search_dirs"])
        entry.update(name=name, required=required,
                     missing_dependency=missing_dependency(entry["error"], name))
        result["libraries"].append(entry)
        if required and not entry["ok"] and result["first_failure"] is None:
            result["first_failure"] = entry
    return result


def main():
    try:
        result = probe()
    except Exception as exc:  # noqa: BLE001 - always answer with JSON
        result = {"error": "%s: %s" % (type(exc).__name__, exc)}
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
