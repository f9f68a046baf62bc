"""Signing a certificate with an SSH key, and checking the signature, with OpenSSH's own tool.

`certify --sign KEY` runs `ssh-keygen -Y sign -f KEY -n gpuready-certificate certificate.json`,
which writes certificate.json.sig beside it. `certify --verify --allowed-signers FILE` finds who
signed (`ssh-keygen -Y find-principals`) and checks the signature against the exact bytes that
were verified (`ssh-keygen -Y verify ... < certificate`). An operator whose provisioning signs
its certificates can so tell them from one edited by hand: the evidence checks catch an
inconsistent edit, the signature any edit at all. Every ssh-keygen runs through `proc`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .. import proc
from ..errors import UsageError, WorkFailed

NAMESPACE = "gpuready-certificate"
SSH_KEYGEN_TIMEOUT = 60.0


def signature_path(certificate: Path) -> Path:
    return certificate.with_name(certificate.name + ".sig")


def ssh_keygen(flag: str) -> str:
    found = shutil.which("ssh-keygen")
    if found is None:
        raise UsageError(f"{flag} needs OpenSSH's ssh-keygen, which is not on PATH (install openssh-client)")
    return found


def _readable_file(path: str | os.PathLike[str], flag: str, what: str) -> Path:
    target = Path(path).expanduser()
    if not str(path).strip():
        raise UsageError(f"{flag}: an empty path (give {what})")
    if not target.exists():
        raise UsageError(f"{flag}: {target} does not exist (give {what})")
    if not target.is_file():
        raise UsageError(f"{flag}: {target} is not a file (give {what})")
    try:
        with target.open("rb"):
            pass
    except OSError as error:
        raise UsageError(f"{flag}: {target} cannot be read: {error.strerror or error}") from None
    return target.absolute()


def _last_line(result: proc.Result) -> str:
    lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    return lines[-1].strip() if lines else f"exit {result.returncode}"


def check_signing_key(path: str | os.PathLike[str]) -> Path:
    """--sign KEY, refused (exit 2) before any work: it must be a readable file ssh-keygen takes for a key."""
    key = _readable_file(path, "--sign", "an SSH private key, e.g. one made by ssh-keygen -t ed25519")
    tool = ssh_keygen("--sign")
    try:
        result = proc.run([tool, "-l", "-f", str(key)], timeout=SSH_KEYGEN_TIMEOUT)
    except proc.NotStarted as error:
        raise UsageError(f"--sign: {error}") from None
    if not result.ok:
        raise UsageError(f"--sign: {key} is not an SSH key ssh-keygen can read: {_last_line(result)}")
    return key


def check_allowed_signers(path: str | os.PathLike[str]) -> Path:
    """--allowed-signers FILE, refused (exit 2) before any work when it cannot be read."""
    found = _readable_file(path, "--allowed-signers",
                           "an allowed signers file: lines of `IDENTITY KEYTYPE KEY`, see ssh-keygen(1)")
    ssh_keygen("--allowed-signers")
    return found


def sign(certificate: Path, key: Path) -> Path:
    """Write certificate.json.sig; WorkFailed (exit 1) when ssh-keygen cannot sign (a passphrase it
    cannot ask for: use an unencrypted provisioning key or ssh-agent)."""
    signature = signature_path(certificate)
    signature.unlink(missing_ok=True)  # ssh-keygen asks before overwriting, and nobody can answer
    result = proc.run([ssh_keygen("--sign"), "-Y", "sign", "-f", str(key), "-n", NAMESPACE, str(certificate)],
                      timeout=SSH_KEYGEN_TIMEOUT)
    if not result.ok or not signature.is_file():
        raise WorkFailed(f"ssh-keygen could not sign {certificate} with {key}: {_last_line(result)}; "
                         "the certificate is written, unsigned")
    return signature


def verify_signature(data: bytes, signature: Path, allowed: Path) -> tuple[str | None, str | None]:
    """(the signer's identity, None) when `signature` is a good signature of `data` by a key in
    `allowed`; (None, why not) otherwise."""
    if not signature.is_file():
        return None, f"the certificate is not signed: no {signature} (sign it with certify --sign KEY)"
    try:
        return _verify(data, signature, allowed, ssh_keygen("--allowed-signers"))
    except proc.NotStarted as error:
        return None, f"the signature could not be checked: {error}"


def _verify(data: bytes, signature: Path, allowed: Path, tool: str) -> tuple[str | None, str | None]:
    found = proc.run([tool, "-Y", "find-principals", "-s", str(signature), "-f", str(allowed)],
                     timeout=SSH_KEYGEN_TIMEOUT)
    principals = [line.strip() for line in found.stdout.splitlines() if line.strip()]
    if not found.ok or not principals:
        return None, f"the signature {signature} is not by a key in {allowed}: {_last_line(found)}"
    why = "no identity verified"
    with tempfile.TemporaryFile() as message:
        for principal in principals:
            message.write(data)
            message.flush()
            message.seek(0)
            result = proc.run([tool, "-Y", "verify", "-f", str(allowed), "-I", principal, "-n", NAMESPACE,
                               "-s", str(signature)], timeout=SSH_KEYGEN_TIMEOUT, stdin=message)
            if result.ok:
                return principal, None
            why = _last_line(result)
            message.seek(0)
            message.truncate()
    return None, f"the signature {signature} does not match the certificate (changed since it was signed?): {why}"


__all__ = ["NAMESPACE", "check_allowed_signers", "check_signing_key", "sign", "signature_path", "verify_signature"]
