"""`invoke matrix.refresh` against a package index double on loopback (and, marked, the real one)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpuready.model import matrix as matrix_mod
from gpuready import refresh as refresh_mod
from gpuready.refresh import changes as refresh_compare
from gpuready.refresh import index as refresh_index
from gpuready.refresh import wheels
from gpuready.refresh import write as refresh_write
from gpuready.model.flags import Constraints, apply_overrides, parse_tf_spec
from gpuready.errors import UsageError
from gpuready.model.plan import NoPlan
from gpuready.model.planner import make_plan

from .conftest import MATRIX_DIR, ROOT, run_cli
from .kernel_doubles import build as build_elf
from .refresh_doubles import Behaviour, IndexDouble, synthetic_release

CU125 = [f"{p} ; extra == 'and-cuda'" for p in matrix_mod.load(MATRIX_DIR).pin_sets["cu12.5"].packages]
CU13 = [f"nvidia-{lib}-cu13<14,>=13.3.0 ; extra == \"and-cuda\"" for lib in ("cublas", "cuda-runtime")]


def matrix_copy(tmp_path: Path, *, without: tuple[str, ...] = ()) -> Path:
    """The shipped matrix in a temporary folder, with some releases taken out."""
    folder = tmp_path / "matrix"
    shutil.copytree(MATRIX_DIR, folder, ignore=shutil.ignore_patterns("__pycache__"))
    path = folder / "tensorflow.toml"
    text = path.read_text(encoding="utf-8")
    kernels_path = folder / "kernels.toml"
    kernels = kernels_path.read_text(encoding="utf-8")
    for version in without:
        text, count = re.subn(r'\[releases\."%s"\]\n(?:[^\[\n].*\n)*\n?' % re.escape(version), "", text)
        assert count == 1, version
        kernels, count = re.subn(r'\n\[releases\."%s"\]\n(?:.*\n)*?\]\n' % re.escape(version), "\n", kernels)
        assert count == 1, version
    path.write_text(text, encoding="utf-8")
    kernels_path.write_text(kernels, encoding="utf-8")
    return folder


def refresh(double: IndexDouble, folder: Path, tmp_path: Path, **kwargs) -> refresh_compare.Report:
    return refresh_mod.refresh(index_url=double.url, matrix_dir=folder, cache_dir=tmp_path / "cache",
                               timeout=5, retries=2, **kwargs)


def cli_env(tmp_path: Path) -> dict[str, str]:
    return {"XDG_CACHE_HOME": str(tmp_path / "xdg-cache"), "GPUREADY_MATRIX": ""}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gpu_library() -> bytes:
    """A small ELF holding real fatbins cut from TensorFlow 2.21.0's libtensorflow_cc.so.2 (tests/data/fatbin)."""
    fixtures = Path(__file__).resolve().parent / "data" / "fatbin"
    embedded = (fixtures / "tf2.21.0-libtensorflow_cc-embedded-0xa0888f0.fatbin").read_bytes()
    main = (fixtures / "tf2.21.0-libtensorflow_cc-nv_fatbin-0x185a00d0.fatbin").read_bytes()
    return build_elf([(".rodata", embedded * 2), (".nv_fatbin", main)])[0]


def future_double(**behaviour) -> IndexDouble:
    """The recorded index plus 2.98.0 (CUDA 12.5.1, the cu12.5 pins: fully derivable; its wheel holds real
    2.21.0 GPU code) and 2.99.0 (CUDA 13.3.0, which cuda.toml lacks, and CUDA 13 wheels no pin set has:
    needs a person; its wheel holds no GPU code)."""
    files98, facts98 = synthetic_release("2.98.0", cuda="12.5.1", caps=["sm_60", "sm_70", "sm_80", "sm_89",
                                                                        "compute_90"], and_cuda=CU125,
                                         libraries={"libtensorflow_cc.so.2": gpu_library()})
    files99, facts99 = synthetic_release("2.99.0", cuda="13.3.0", caps=["sm_75", "sm_80", "sm_90", "sm_100",
                                                                        "compute_120"], and_cuda=CU13)
    tf = [f for f in files98 + files99 if f["filename"].startswith("tensorflow-")]
    cpu = [f for f in files98 + files99 if f["filename"].startswith("tensorflow_cpu-")]
    return IndexDouble(extra_files={"tensorflow": tf, "tensorflow-cpu": cpu},
                       extra_facts={"2.98.0": facts98, "2.99.0": facts99}, behaviour=Behaviour(**behaviour))


# --------------------------------------------------------------------------- the matrix is current


def test_check_reports_current_against_the_recorded_index(tmp_path) -> None:
    folder = matrix_copy(tmp_path)
    with IndexDouble() as double:
        result = run_cli("matrix.refresh", "--check", "--index", double.url, "--matrix", str(folder),
                         env=cli_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "The matrix is current" in result.stdout
    assert "Pre-releases not considered: 2.22.0rc0" in result.stdout
    assert "Differences" not in result.stdout  # Pythons, platforms, glibc floors all agree
    assert double.paths("/files/") == []  # known releases need no wheel
    assert (folder / "tensorflow.toml").read_bytes() == (MATRIX_DIR / "tensorflow.toml").read_bytes()


def test_check_lists_exactly_what_is_new_and_exits_1(tmp_path) -> None:
    folder = matrix_copy(tmp_path, without=("2.21.0",))
    before = (folder / "tensorflow.toml").read_bytes()
    with IndexDouble() as double:
        result = run_cli("matrix.refresh", "--check", "--index", double.url, "--matrix", str(folder),
                         env=cli_env(tmp_path))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "New on the index (1):" in result.stdout
    assert re.search(r"^  2\.21\.0: CUDA 12\.5\.1, cuDNN 9, SASS sm_60, sm_70, sm_80, sm_89, PTX compute_90, "
                     r"GPU platforms linux-64, pins cu12\.5 \(and-cuda range\), linux-64 Pythons "
                     r"3\.10, 3\.11, 3\.12, 3\.13, glibc 2\.27$", result.stdout, re.M), result.stdout
    assert "out of date" in result.stderr
    assert (folder / "tensorflow.toml").read_bytes() == before  # --check writes nothing


# --------------------------------------------------------------------------- new releases


def test_refresh_reproduces_releases_from_the_wheels(tmp_path) -> None:
    removed = ("2.21.0", "2.18.0", "2.14.0", "2.12.0")
    folder = matrix_copy(tmp_path, without=removed)
    pruned = (folder / "tensorflow.toml").read_text(encoding="utf-8")
    with IndexDouble() as double:
        report = refresh(double, folder, tmp_path)
        wheel_bytes = {p: len(double.wheel(p.rsplit("/", 1)[1]) or b"") for p in set(double.paths("/files/"))}
    assert report.written and [str(n.version) for n in report.new] == sorted(removed, key=matrix_mod.Version)
    text = (folder / "tensorflow.toml").read_text(encoding="utf-8")
    # Every existing line (comments included) is kept, in order; the new blocks sit in version order.
    kept = iter(text.splitlines())
    assert all(line in kept for line in pruned.splitlines())
    headers = re.findall(r'^\[releases\."([^"]+)"\]', text, re.M)
    assert headers == sorted(headers, key=matrix_mod.Version)

    original, refreshed = matrix_mod.load(MATRIX_DIR), matrix_mod.load(folder)
    for version in removed:
        want, got = original.release(version), refreshed.release(version)
        assert (got.cuda, got.cudnn, got.sass, got.ptx, got.gpu_platforms) == \
               (want.cuda, want.cudnn, want.sass, want.ptx, want.gpu_platforms), version
        for dist, platforms in want.wheels.items():
            for platform, group in platforms.items():
                assert got.wheels[dist][platform].pythons == group.pythons, (version, dist, platform)
                if group.glibc:
                    assert got.wheels[dist][platform].glibc == group.glibc
    # Derived from the facts alone: 2.18.0's exact pins are the cu12.5 set with nccl 2.21.5.
    r218 = refreshed.release("2.18.0")
    assert (r218.pins, r218.pin_overrides, r218.and_cuda, r218.review) == \
           ("cu12.5", ("nvidia-nccl-cu12==2.21.5",), "exact", "")
    # Judgements are left to a person, and say what to look at.
    assert "nvidia-nccl-cu12" in refreshed.release("2.21.0").review
    assert refreshed.release("2.21.0").pin_overrides == ("nvidia-nccl-cu12==2.27.7",)
    assert "tensorrt==8.5.3.1" in refreshed.release("2.14.0").review
    assert "no and-cuda extra" in refreshed.release("2.12.0").review
    # The wheels were read in ranges, never whole.
    assert wheel_bytes and double.bytes_sent("/files/") < sum(wheel_bytes.values()) / 2
    assert all(entry["status"] == 206 for entry in double.log if entry["path"].startswith("/files/"))


def test_future_releases_derived_or_marked_for_review(tmp_path, linux_host) -> None:
    folder = matrix_copy(tmp_path)
    with future_double() as double:
        report = refresh(double, folder, tmp_path)
    assert [str(n.version) for n in report.new] == ["2.98.0", "2.99.0"]
    matrix = matrix_mod.load(folder)
    r98, r99 = matrix.release("2.98.0"), matrix.release("2.99.0")
    assert (r98.cuda, r98.pins, r98.pin_overrides, r98.and_cuda, r98.review) == ("12.5.1", "cu12.5", (), "exact", "")
    assert r98.wheels["tensorflow"]["linux-64"].glibc == "2.27"
    assert r98.wheels["tensorflow"]["linux-aarch64"].glibc == "2.27"
    assert r98.gpu_platforms == ("linux-64",)  # the aarch64 wheel is no CUDA build; win-64 is a shim
    assert r99.cuda == "13.3.0" and r99.sass == ("sm_75", "sm_80", "sm_90", "sm_100") and r99.ptx == ("compute_120",)
    assert "CUDA 13.3.0 has no row in cuda.toml" in r99.review
    assert "no pin set in cuda-wheels.toml" in r99.review

    # The GPU code is measured from the wheel: 2.98.0's MLIR kernels are compute_90 PTX of ISA 8.5.
    assert report.measured == ["2.98.0", "2.99.0"]
    sets = {(s.section, s.isa, s.fatbins) for s in r98.kernels.sets}
    assert sets == {("embedded", "8.5", 2), ("nv_fatbin", "8.3", 1)}
    assert r99.kernels.sets == () and "holds no GPU code" in r99.kernels.unmeasured
    host = apply_overrides(linux_host, matrix, driver="600.10", gpu="8.0")
    assert make_plan(host, matrix).tensorflow == "2.98.0"  # fully derived: plannable at once
    h100 = apply_overrides(linux_host, matrix, driver="550.54.14", gpu="9.0")
    rejected = {r.tensorflow: r for r in make_plan(h100, matrix).rejected}
    assert rejected["2.98.0"].code == "ptx-driver-too-old" and "PTX ISA 8.5" in rejected["2.98.0"].message
    with pytest.raises(NoPlan, match="under review in the matrix: 2.99.0"):
        make_plan(host, matrix, Constraints(tf=parse_tf_spec("2.99")))


def test_ignored_ranges_mean_review_not_a_download(tmp_path) -> None:
    folder = matrix_copy(tmp_path)
    with future_double(ranges=False) as double:
        report = refresh(double, folder, tmp_path)
    r99 = matrix_mod.load(folder).release("2.99.0")
    assert "does not answer range requests" in r99.review
    assert r99.cuda == "" and r99.sass == () and r99.gpu_platforms == ()
    assert "cuda =" not in report.new[1].render()  # unknown facts are left out, not guessed
    assert matrix_mod.load(folder).release("2.98.0").review  # the same for the other release


def test_pep658_metadata_file_is_used_when_offered(tmp_path) -> None:
    folder = matrix_copy(tmp_path)
    with future_double(pep658=True) as double:
        refresh(double, folder, tmp_path, check=True)
    assert any(p.endswith("-manylinux_2_27_x86_64.whl.metadata") for p in double.paths("/files/"))


def test_sizes_learned_by_range_when_the_index_lists_none(tmp_path) -> None:
    folder = matrix_copy(tmp_path)
    with future_double(sizes=False) as double:
        report = refresh(double, folder, tmp_path, check=True)
    assert report.new[0].cuda == "12.5.1"
    assert any(entry["range"] == "bytes=0-0" for entry in double.log)


def test_second_run_is_served_from_the_cache(tmp_path) -> None:
    folder = matrix_copy(tmp_path)
    with future_double() as double:
        refresh(double, folder, tmp_path, check=True)
        first = len(double.log)
        report = refresh(double, folder, tmp_path, check=True)
        second = double.log[first:]
    assert [e["status"] for e in second] == [304, 304]  # the two project pages, revalidated
    assert report.requests == 2 and report.new[0].cuda == "12.5.1"


def test_retries_ride_out_a_busy_index(tmp_path) -> None:
    folder = matrix_copy(tmp_path)
    with IndexDouble(behaviour=Behaviour(fail_first=2)) as double:
        report = refresh(double, folder, tmp_path, check=True)
    assert report.current and [e["status"] for e in double.log][:3] == [503, 503, 200]


# --------------------------------------------------------------------------- bad input, offline


def test_offline_fails_cleanly_and_changes_nothing(tmp_path) -> None:
    folder = matrix_copy(tmp_path, without=("2.21.0",))
    path = folder / "tensorflow.toml"
    before, mtime = path.read_bytes(), path.stat().st_mtime_ns
    started = time.monotonic()
    result = run_cli("matrix.refresh", "--index", f"http://127.0.0.1:{closed_port()}/simple/",
                     "--matrix", str(folder), env=cli_env(tmp_path))
    assert time.monotonic() - started < 30  # bounded retries
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("gpuready:")]
    assert len(errors) == 1 and "cannot reach the package index" in errors[0] and "nothing was changed" in errors[0]
    assert path.read_bytes() == before and path.stat().st_mtime_ns == mtime


def test_an_index_that_vanishes_mid_run_changes_nothing(tmp_path) -> None:
    folder = matrix_copy(tmp_path)
    before = (folder / "tensorflow.toml").read_bytes()
    with future_double(files_gone=True) as double:
        with pytest.raises(refresh_index.Offline, match="nothing was changed"):
            refresh(double, folder, tmp_path)
    assert (folder / "tensorflow.toml").read_bytes() == before
    assert not list(folder.glob(".*.tmp"))


def test_html_instead_of_json_is_one_clear_error(tmp_path) -> None:
    folder = matrix_copy(tmp_path)
    with IndexDouble(behaviour=Behaviour(html=True)) as double:
        result = run_cli("matrix.refresh", "--check", "--index", double.url, "--matrix", str(folder),
                         env=cli_env(tmp_path))
    assert result.returncode == 1 and "did not answer with the JSON simple API" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args, named", [
    (["--index", "ftp://example.invalid/simple/"], "--index"),
    (["--index", "not a url"], "--index"),
    (["--matrix", "/nonexistent/matrix"], "--matrix"),
    (["--bogus"], "--bogus"),
])
def test_bad_flags_exit_2(tmp_path, args, named) -> None:
    result = run_cli("matrix.refresh", *args, env=cli_env(tmp_path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert named in result.stderr and "Traceback" not in result.stderr


def test_malformed_matrix_is_reported_and_left_alone(tmp_path) -> None:
    folder = matrix_copy(tmp_path)
    path = folder / "tensorflow.toml"
    path.write_text(path.read_text(encoding="utf-8").replace('cudnn = "9"', "cudnn = 9", 1), encoding="utf-8")
    before = path.read_bytes()
    with IndexDouble() as double:
        result = run_cli("matrix.refresh", "--index", double.url, "--matrix", str(folder), env=cli_env(tmp_path))
    assert result.returncode == 2 and "cudnn" in result.stderr
    assert path.read_bytes() == before and double.log == []


def test_index_url_must_be_http() -> None:
    with pytest.raises(UsageError):
        refresh_index.check_index_url("file:///srv/simple")
    assert refresh_index.check_index_url("https://mirror.example/simple") == "https://mirror.example/simple/"


# --------------------------------------------------------------------------- atomic writes


def test_interrupted_write_leaves_the_old_file(tmp_path, monkeypatch) -> None:
    folder = matrix_copy(tmp_path, without=("2.21.0",))
    path = folder / "tensorflow.toml"
    before = path.read_bytes()

    def interrupted(fd: int) -> None:
        raise KeyboardInterrupt  # Ctrl-C between writing the new text and renaming it

    monkeypatch.setattr(os, "fsync", interrupted)
    with IndexDouble() as double, pytest.raises(KeyboardInterrupt):
        refresh(double, folder, tmp_path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == []


def test_killed_refresh_never_leaves_a_half_written_matrix(tmp_path) -> None:
    """SIGKILL at many moments of a slow refresh: the file is always the old one or the whole new one."""
    folder = matrix_copy(tmp_path, without=("2.21.0", "2.20.0"))
    path = folder / "tensorflow.toml"
    before = path.read_bytes()
    kernels = folder / "kernels.toml"
    kernels_before = kernels.read_bytes()
    code = ("import sys; from pathlib import Path; from gpuready import refresh as r; "
            "r.refresh(index_url=sys.argv[1], matrix_dir=Path(sys.argv[2]), cache_dir=Path(sys.argv[3]), "
            "timeout=5, retries=1)")
    outcomes = set()
    with IndexDouble(behaviour=Behaviour(file_delay=0.02)) as double:
        for attempt in range(12):
            path.write_bytes(before)
            kernels.write_bytes(kernels_before)  # tensorflow.toml is written first, kernels.toml after it
            cache = tmp_path / f"cache{attempt}"  # a cold cache each time: the run stays slow
            proc = subprocess.Popen([sys.executable, "-c", code, double.url, str(folder), str(cache)],
                                    cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(0.3 + attempt * 0.25)
            finished = proc.poll() is not None
            if not finished:
                proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            now = path.read_bytes()
            matrix = matrix_mod.load(folder)  # never half a file: it always parses and validates
            if now == before:
                outcomes.add("old")
            else:
                assert {"2.20.0", "2.21.0"} <= {str(r.version) for r in matrix.releases}
                outcomes.add("new")
            if finished:
                assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
                break
    assert "old" in outcomes and "new" in outcomes  # killed early at least once, and it did finish


def test_insert_keeps_text_and_orders_blocks() -> None:
    text = '# head\n\nschema = 1\n\n# about 2.1\n[releases."2.1.0"]\ncuda = "1"\n\n[releases."2.3.0"]\ncuda = "3"\n'
    files = {"tensorflow": {}}
    new = [refresh_compare.NewRelease(matrix_mod.Version(v), files) for v in ("2.0.0", "2.2.0", "2.4.0")]
    out = refresh_write.insert_releases(text, new)
    assert re.findall(r'releases\."([^"]+)"', out) == ["2.0.0", "2.1.0", "2.2.0", "2.3.0", "2.4.0"]
    assert "# about 2.1\n[releases.\"2.1.0\"]" in out  # a header's comment stays with it
    assert out.startswith("# head\n\nschema = 1\n")


# --------------------------------------------------------------------------- the summary for a pull request


def test_summary_says_what_moved(tmp_path) -> None:
    folder = matrix_copy(tmp_path)
    summary = tmp_path / "summary.md"
    with future_double() as double:
        result = run_cli("matrix.refresh", "--index", double.url, "--matrix", str(folder), "--summary",
                         str(summary), env=cli_env(tmp_path))
    assert result.returncode == 0, result.stderr
    text = summary.read_text(encoding="utf-8")
    assert "| TensorFlow (newest plannable) | 2.21.0 | 2.98.0 (moved) |" in text
    assert "| CUDA (build) | 12.5.1 | 12.5.1 |" in text
    assert "**2.99.0**: CUDA 13.3.0" in text and "needs review" in text


# --------------------------------------------------------------------------- the real index


@pytest.mark.network
def test_check_against_the_real_index(tmp_path) -> None:
    """The default index (configuration); its timings are in bench/bench_refresh.py."""
    result = run_cli("matrix.refresh", "--check", "--matrix", str(matrix_copy(tmp_path)), env=cli_env(tmp_path))
    if "cannot reach the package index" in result.stderr:
        pytest.skip("the package index is not reachable from here")
    assert result.returncode in (0, 1), result.stderr
    if result.returncode == 0:
        assert "The matrix is current" in result.stdout
    else:
        assert "New on the index" in result.stdout


# --------------------------------------------------------------------------- units


def _file(name: str, requires: str | None = None, yanked: bool = False) -> refresh_index.IndexFile:
    return refresh_index.IndexFile(name, f"https://files.example/{name}", None, requires, yanked, None, False)


def test_index_facts_from_file_names() -> None:
    files = [
        _file("tensorflow-3.0.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"),
        _file("tensorflow-3.0.0-cp312-cp312-manylinux_2_28_x86_64.whl"),
        _file("tensorflow-3.0.0-cp39-cp39-manylinux_2_17_x86_64.whl", requires=">=3.10"),  # excluded by itself
        _file("tensorflow-3.0.0-cp313-cp313-manylinux_2_17_aarch64.manylinux_2_28_aarch64.whl"),
        _file("tensorflow-3.0.0-cp313-cp313-macosx_12_0_arm64.whl"),
        _file("tensorflow-3.0.0-cp313-cp313-macosx_10_15_x86_64.whl"),  # no gpuready platform
        _file("tensorflow-3.0.0-cp313-cp313-win_amd64.whl", yanked=True),
        _file("tensorflow-3.1.0rc0-cp313-cp313-win_amd64.whl"),
        _file("tensorflow-3.0.0.tar.gz"),
    ]
    found = wheels.index_releases(files)
    assert list(found) == [matrix_mod.Version("3.0.0")]
    groups = found[matrix_mod.Version("3.0.0")]
    assert list(groups) == ["linux-64", "linux-aarch64", "osx-arm64"]
    assert (groups["linux-64"].pythons, groups["linux-64"].glibc) == (("3.11", "3.12"), "2.28")
    assert groups["linux-aarch64"].glibc == "2.17"  # one file, two tags: it installs on the lower
    assert groups["linux-64"].newest_file().filename.startswith("tensorflow-3.0.0-cp312")


@pytest.mark.parametrize("text, cuda", [
    ("import collections\nbuild_info = collections.OrderedDict([('cuda_version', '12.5.1'), ('cudnn_version', '9'),"
     " ('cuda_compute_capabilities', ['sm_80', 'compute_90']), ('is_cuda_build', True)])", "12.5.1"),
    ("build_info = {'cuda_version': '11.2', 'cudnn_version': '8', 'cuda_compute_capabilities': ['sm_70'],"
     " 'is_cuda_build': True}", "11.2"),
    ("build_info = dict(cuda_version='12.3', cudnn_version='8', cuda_compute_capabilities=['sm_60'],"
     " is_cuda_build=True)", "12.3"),
])
def test_build_info_forms(text, cuda) -> None:
    assert wheels.build_facts(wheels.parse_build_info(text)).cuda == cuda


@pytest.mark.parametrize("text", [
    "build_info = make_it()",  # not literal data: never run it
    "x = 1",
    "build_info = {'is_cuda_build': True, 'cuda_version': 'twelve', 'cudnn_version': '9',"
    " 'cuda_compute_capabilities': ['sm_80']}",
    "build_info = {'is_cuda_build': True, 'cuda_version': '12.5', 'cudnn_version': '9',"
    " 'cuda_compute_capabilities': ['8.0']}",
    "build_info = (",
])
def test_build_info_that_cannot_be_read(text) -> None:
    with pytest.raises(refresh_index.NotReadable):
        wheels.build_facts(wheels.parse_build_info(text))


def test_review_relaxes_only_releases_under_review(tmp_path) -> None:
    folder = matrix_copy(tmp_path)
    path = folder / "tensorflow.toml"
    text = path.read_text(encoding="utf-8")
    block = text[text.index('[releases."2.21.0"]'):]
    stripped = block.replace('cuda = "12.5.1"\n', "").replace('sass = ["sm_60", "sm_70", "sm_80", "sm_89"]\n', "")
    path.write_text(text.replace(block, stripped), encoding="utf-8")
    with pytest.raises(matrix_mod.MatrixError, match="cuda: missing"):
        matrix_mod.load(folder)
    path.write_text(text.replace(block, stripped.replace("\n", '\nreview = "fill cuda and sass"\n', 1)),
                    encoding="utf-8")
    release = matrix_mod.load(folder).release("2.21.0")
    assert (release.review, release.cuda, release.sass) == ("fill cuda and sass", "", ())


def test_a_whole_wheel_is_not_cached_twice(tmp_path) -> None:
    """The index serves files as immutable (max-age of years, an ETag): CacheControl would keep a
    second copy of each wheel in its HTTP cache beside the one download() keeps under its sha256."""
    import hashlib
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from gpuready.refresh.index import IndexClient, IndexFile

    payload = b"PK" + bytes(range(256)) * 4096  # ~1 MB that no cache file would hold by chance
    digest = hashlib.sha256(payload).hexdigest()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Cache-Control", "max-age=365000000, immutable, public")
            self.send_header("ETag", f'"{digest[:16]}"')
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with IndexClient(f"{url}/simple/", cache_dir=tmp_path / "cache") as client:
            wheel = IndexFile("x-1-py3-none-any.whl", f"{url}/files/x-1-py3-none-any.whl", len(payload),
                              None, False, digest, False)
            path = client.download(wheel, tmp_path / "wheels")
    finally:
        server.shutdown()
        server.server_close()
    assert path.read_bytes() == payload
    cached = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert all(p.stat().st_size < len(payload) for p in cached), [(p, p.stat().st_size) for p in cached]
