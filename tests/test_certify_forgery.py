"""Forged certificates are refused: by `certify --verify` (exit 1, naming what is wrong) and by
setup's no-op, which does not report "already certified" but certifies again. The certificates
are real (level 0, made by `certify` in a real venv whose files have real RECORD hashes, or by
`setup` from real wheels installed by uv); only the forger's edits are by hand. Also: signing
with a real ed25519 key made by ssh-keygen, and one byte edited after signing."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import pytest

from gpuready import pipeline as S
from gpuready.certify import service
from gpuready.config import Settings
from gpuready.cli._common import plan_for_flags
from gpuready.env.layout import certificate_path, read_certificate, read_state, write_state
from gpuready.model.facts import HostFacts
from gpuready.model.matrix import load
from gpuready.model.planner import make_plan
from gpuready.progress import Steps

from .certify_doubles import add_distribution, bare_env, site_packages, write_install_record
from .conftest import MATRIX_DIR, run_cli
from .test_setup import CPU_FLAGS

Edit = Callable[[dict[str, Any], Path], None]


def _check(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in data["checks"] if c["name"] == name)


def edit_status(data: dict[str, Any], prefix: Path) -> None:
    data["status"] = "certified"


def edit_level(data: dict[str, Any], prefix: Path) -> None:
    data["level"] = 2


def edit_throughput(data: dict[str, Any], prefix: Path) -> None:
    data["throughput"] = {"gpu_images_per_second": 21000.5, "cpu_images_per_second": 3500.0, "ratio": 6.0}


def flip_check(data: dict[str, Any], prefix: Path) -> None:
    """The file check turned into a pass while its recorded measurements say a file differs."""
    check = _check(data, "files-match-record")
    check.update(status="pass", reason=None, details={**check["details"], "mismatches": 1,
                                                       "modified": ["absl_py/__init__.py"]})


def flip_lock_hash(data: dict[str, Any], prefix: Path) -> None:
    """lock-hash left at pass while the sha256 it measured is not the lock's."""
    check = _check(data, "lock-hash")
    check["details"] = {**check["details"], "sha256": "0" * 64}


def modify_file(data: dict[str, Any], prefix: Path) -> None:
    """Not an edit of the certificate: a file inside the environment, after certification."""
    (site_packages(prefix) / "absl_py" / "__init__.py").write_text("import os; os.system('curl evil')\n")


FORGERIES: dict[str, tuple[Edit, str]] = {
    "status edited": (edit_status, "the status is certified, but the recorded checks give cpu-only"),
    "level edited": (edit_level, "level 2 is claimed but level 1's checks import, build-info"),
    "throughput edited": (edit_throughput, "throughput figures are recorded without the throughput check"),
    "a check flipped": (flip_check, "files-match-record is pass but records 1 file(s) that differ"),
    "lock-hash passed measuring another sha256": (flip_lock_hash, "lock-hash passed with sha256 000000000000..., "
                                                                 "not the certificate's lock"),
    "a file inside the environment modified": (
        modify_file, "differ from their wheel's RECORD since certification: absl_py/__init__.py (absl-py 2.3.1) "
                     "is modified"),
}


def forge(prefix: Path, edit: Edit, *, state_too: bool = False) -> None:
    """Apply `edit`; with state_too also record the forged file's digest in state.json, as a forger
    who knows how gpuready works would."""
    path = certificate_path(prefix)
    data = json.loads(path.read_text())
    edit(data, prefix)
    path.write_text(json.dumps(data, indent=2))
    if state_too:
        state = read_state(prefix)
        write_state(prefix, state.model_copy(update={
            "certificate_sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "certificate": "certified"}))


# ----------------------------------------------------------------------------- certify --verify


@pytest.fixture(scope="module")
def this_host() -> HostFacts:
    detected = json.loads(run_cli("detect", "--json").stdout)
    return HostFacts.from_dict({k: v for k, v in detected.items() if k in HostFacts.__dataclass_fields__})


@pytest.fixture
def certified_env(tmp_path: Path, this_host: HostFacts) -> Path:
    """A real venv, locked and installed by hand, certified at level 0 on this host."""
    prefix = bare_env(tmp_path / "env")
    add_distribution(prefix, "absl-py", "2.3.1")
    add_distribution(prefix, "tensorflow-cpu", "2.21.0")
    write_install_record(prefix, packages={"absl-py": "2.3.1", "tensorflow-cpu": "2.21.0"},
                         plan=make_plan(this_host, load(MATRIX_DIR)))
    cert = service.certify(prefix, level=0, host=this_host)
    assert cert.status == "cpu-only" and service.verify(prefix, this_host).ok
    return prefix


@pytest.mark.parametrize("name", FORGERIES)
def test_verify_refuses_a_forged_certificate_naming_what_is_wrong(name: str, certified_env: Path) -> None:
    edit, expected = FORGERIES[name]
    forge(certified_env, edit)
    done = run_cli("certify", "--prefix", str(certified_env), "--verify")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "The certificate does not hold" in done.stdout
    assert expected in " ".join(done.stdout.split()), done.stdout
    assert "Traceback" not in done.stderr


def test_a_real_failure_flipped_to_pass_is_refused(certified_env: Path, this_host: HostFacts) -> None:
    """A level-0 failure (a file edited after install), its check and status edited to pass."""
    modify_file({}, certified_env)
    assert service.certify(certified_env, level=0, host=this_host).status == "failed"

    def flip(data: dict[str, Any], prefix: Path) -> None:
        data["status"] = "cpu-only"
        _check(data, "files-match-record").update(status="pass", reason=None)

    forge(certified_env, flip)
    done = run_cli("certify", "--prefix", str(certified_env), "--verify")
    text = " ".join(done.stdout.split())
    assert done.returncode == 1
    assert "files-match-record is pass but records 1 file(s) that differ" in text
    assert "the status is cpu-only, but the recorded checks give failed" not in text, \
        "the flipped check makes the status follow; the check's own figures do not"
    assert "absl_py/__init__.py (absl-py 2.3.1) is modified" in text


def test_verify_json_and_prom_report_a_forged_certificate_as_untrusted(certified_env: Path, tmp_path: Path) -> None:
    forge(certified_env, edit_status)
    prom = tmp_path / "cert.prom"
    done = run_cli("certify", "--prefix", str(certified_env), "--verify", "--json", "--prom", str(prom))
    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert result["ok"] is False and result["trusted"] is False
    assert any("recorded checks give cpu-only" in r for r in result["reasons"])
    text = prom.read_text()
    assert 'status="certified"' not in text, "a forged status is not exported"
    assert "gpuready_certificate_verified{" in text and text.count("} 0.0") >= 2


def test_certify_records_the_certificates_digest_in_the_state(certified_env: Path, this_host: HostFacts) -> None:
    write_state(certified_env, S.SetupState(env="e", prefix=str(certified_env), flavor="pip", plan_hash="p",
                                            lock_sha256="l", driver=None, certificate="failed", at="now"))
    service.certify(certified_env, level=0, host=this_host)
    state = read_state(certified_env)
    assert state.certificate_sha256 == hashlib.sha256(certificate_path(certified_env).read_bytes()).hexdigest()
    assert state.certificate == "cpu-only"
    forge(certified_env, lambda data, prefix: data.update(gpuready_version="edited"))
    [reason] = service.verify(certified_env, this_host).reasons
    assert "sha256 differs from the one recorded in" in reason and "state.json" in reason


# ----------------------------------------------------------------------------- setup's no-op


@pytest.fixture
def setup_world(tmp_path, simple, monkeypatch):
    """setup with the real certification at level 0 (the wheels hold no TensorFlow for level 1+)."""
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    conf = Settings(index_url=simple.as_uri(), envs_dir=str(tmp_path / "envs"),
                    prefix_root=str(tmp_path / "prefixes"))
    calls: list[Path] = []
    real = service.certify
    monkeypatch.setattr(service, "certify", lambda prefix, **kw: calls.append(prefix) or real(prefix, **kw))
    plan = plan_for_flags(conf, **CPU_FLAGS)
    return SimpleNamespace(conf=conf, plan=plan, calls=calls)


class Notes(Steps):
    def __init__(self) -> None:
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        self.notes.append(text)


def _setup(world, **options) -> tuple[S.Outcome, list[str]]:
    steps = Notes()
    outcome = S.run(world.conf, world.plan, **{"level": 0, "allow_cpu": True, "yes": True, "steps": steps, **options})
    return outcome, steps.notes


from .test_setup import simple  # noqa: E402,F401  (the local wheel index fixture)


def test_setup_then_the_no_op_with_a_real_certificate(setup_world) -> None:
    first, _ = _setup(setup_world)
    assert first.certificate == "cpu-only" and len(setup_world.calls) == 1
    assert read_certificate(first.prefix).check("files-match-record").status == "pass"
    second, _ = _setup(setup_world)
    assert second.noop and second.certificate == "cpu-only" and len(setup_world.calls) == 1


@pytest.mark.parametrize("name", FORGERIES)
def test_setup_does_not_take_a_forged_certificate_for_certified(name: str, setup_world) -> None:
    """PRODUCT.md: setup does nothing only where the environment *is* certified. A forged
    certificate proves nothing, so setup has work to do, as when the driver changed: it
    certifies again, and the honest certificate replaces the forged one (a modified file then
    fails level 0, naming the file: exit 1, and `setup --force` reinstalls)."""
    edit, expected = FORGERIES[name]
    first, _ = _setup(setup_world)
    forge(first.prefix, edit, state_too=True)
    again, notes = _setup(setup_world)
    assert not again.noop and len(setup_world.calls) == 2
    assert any(expected in " ".join(n.split()) for n in notes), notes
    cert = read_certificate(again.prefix)
    assert cert.level == 0 and cert.throughput is None
    if edit is modify_file:
        assert again.certificate == cert.status == "failed" and again.exit_code == 1
        reason = cert.check("files-match-record").reason
        assert "absl_py/__init__.py (absl-py 2.3.1) is modified" in reason and "setup --force" in reason
    else:
        assert again.certificate == cert.status == "cpu-only" and again.exit_code == 0


def test_the_no_op_reports_the_certificates_status_not_the_states(setup_world) -> None:
    first, _ = _setup(setup_world)
    for claimed in ("certified", "skipped"):
        write_state(first.prefix, read_state(first.prefix).model_copy(update={"certificate": claimed}))
        again, _ = _setup(setup_world, allow_cpu=False)
        assert again.noop and again.certificate == "cpu-only" and again.exit_code == 3
    assert len(setup_world.calls) == 1


def test_a_certificate_edited_without_updating_the_state_is_certified_again(setup_world) -> None:
    first, _ = _setup(setup_world)
    forge(first.prefix, lambda data, prefix: data.update(created="2030-01-01T00:00:00+00:00"))
    again, notes = _setup(setup_world)
    assert not again.noop and "the certificate changed since it was written" in notes[0]


# ----------------------------------------------------------------------------- signing


def keygen(path: Path, comment: str) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True,
                   stdin=subprocess.DEVNULL)
    return path


def allowed_signers(path: Path, identity: str, key: Path) -> Path:
    path.write_text(f"{identity} {key.with_suffix('.pub').read_text()}")
    return path


@pytest.fixture
def keys(tmp_path: Path) -> SimpleNamespace:
    ops = keygen(tmp_path / "ops", "provisioning")
    other = keygen(tmp_path / "other", "someone")
    return SimpleNamespace(ops=ops, other=other,
                           allowed=allowed_signers(tmp_path / "allowed_signers", "ops@example.org", ops))


def _one_byte_edited(path: Path) -> None:
    """The last digit of the creation time changed: valid JSON, consistent evidence, other bytes."""
    data = path.read_bytes()
    at = data.index(b'"created": "') + len(b'"created": "2026-01-01T00:00:0')
    path.write_bytes(data[:at] + (b"1" if data[at:at + 1] != b"1" else b"2") + data[at + 1:])


def test_signing_round_trip_then_one_byte_edited(certified_env: Path, keys) -> None:
    done = run_cli("certify", "--prefix", str(certified_env), "--level", "0", "--allow-cpu", "--sign", str(keys.ops))
    assert done.returncode == 0, done.stdout + done.stderr
    signature = certificate_path(certified_env).with_name("certificate.json.sig")
    assert signature.read_text().startswith("-----BEGIN SSH SIGNATURE-----")
    done = run_cli("certify", "--prefix", str(certified_env), "--verify", "--allowed-signers", str(keys.allowed))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "signed by ops@example.org" in done.stdout
    ok = json.loads(run_cli("certify", "--prefix", str(certified_env), "--verify", "--json",
                            "--allowed-signers", str(keys.allowed)).stdout)
    assert ok["signer"] == "ops@example.org" and ok["trusted"] is True

    _one_byte_edited(certificate_path(certified_env))
    without = run_cli("certify", "--prefix", str(certified_env), "--verify")
    assert without.returncode == 0, "the edit is consistent: only the signature can tell"
    done = run_cli("certify", "--prefix", str(certified_env), "--verify", "--allowed-signers", str(keys.allowed))
    assert done.returncode == 1
    assert "does not match the certificate (changed since it was signed?)" in " ".join(done.stdout.split())


def test_an_unsigned_or_foreign_signature_fails_verify(certified_env: Path, keys) -> None:
    done = run_cli("certify", "--prefix", str(certified_env), "--verify", "--allowed-signers", str(keys.allowed))
    assert done.returncode == 1 and "the certificate is not signed" in " ".join(done.stdout.split())
    signed = run_cli("certify", "--prefix", str(certified_env), "--level", "0", "--allow-cpu", "--sign", str(keys.other))
    assert signed.returncode == 0, signed.stderr
    done = run_cli("certify", "--prefix", str(certified_env), "--verify", "--allowed-signers", str(keys.allowed))
    assert done.returncode == 1 and "is not by a key in" in " ".join(done.stdout.split())
    again = run_cli("certify", "--prefix", str(certified_env), "--level", "0", "--allow-cpu")
    assert again.returncode == 0
    assert not certificate_path(certified_env).with_name("certificate.json.sig").exists(), \
        "a new certificate drops the signature of the one it replaced"


def test_bad_signing_flags_are_refused_before_any_work(certified_env: Path, keys, tmp_path: Path) -> None:
    before = certificate_path(certified_env).read_bytes()
    not_a_key = tmp_path / "notes.txt"
    not_a_key.write_text("hello\n")
    unreadable = keygen(tmp_path / "locked", "x")
    unreadable.chmod(0)
    cases = [
        (["--sign", str(tmp_path / "missing")], "--sign: ", "does not exist"),
        (["--sign", str(not_a_key)], "--sign: ", "is not an SSH key ssh-keygen can read"),
        (["--sign", str(tmp_path)], "--sign: ", "is not a file"),
        (["--verify", "--sign", str(keys.ops)], "--sign signs a new certificate", "--allowed-signers"),
        (["--verify", "--allowed-signers", str(tmp_path / "missing")], "--allowed-signers: ", "does not exist"),
        (["--allowed-signers", str(keys.allowed)], "--allowed-signers goes with --verify", ""),
    ]
    import os
    if os.geteuid() != 0:  # root reads any file
        cases.append((["--sign", str(unreadable)], "--sign: ", "cannot be read"))
    for flags, first, second in cases:
        done = run_cli("certify", "--prefix", str(certified_env), "--level", "0", *flags)
        text = " ".join(done.stderr.split())
        assert done.returncode == 2, (flags, done.stdout, done.stderr)
        assert first in text and second in text and "Traceback" not in text, (flags, text)
    assert certificate_path(certified_env).read_bytes() == before, "nothing was certified"
