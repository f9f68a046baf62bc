"""Cloud-init user-data that provisions a fresh GPU instance at first boot.

`user_data()` is pure: it returns the text of a `#cloud-config` document. At first
boot cloud-init installs Python's venv module and git, writes gpuready's
bootstrap script (scripts/bootstrap.sh, shipped in the package) to
/usr/local/sbin/gpuready-bootstrap and runs it once (runcmd). The script installs
gpuready into /opt/gpuready/tool, runs `gpuready setup --yes` into a fixed prefix,
copies the certificate to /var/lib/gpuready/certificate.json and leaves
/var/lib/gpuready/SUCCESS or FAILED, result.json and the log. A failure exits
non-zero, so cloud-init records the runcmd (scripts-user) stage as failed.

The image must already carry the NVIDIA driver (the GPU images clouds offer do);
the packages named are Debian / Ubuntu ones.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from importlib import resources
from urllib.parse import urlsplit

import yaml
from packaging.requirements import InvalidRequirement, Requirement

from .errors import UsageError
from .model import flags

SCRIPT_PATH = "/usr/local/sbin/gpuready-bootstrap"
STATE_DIR = "/var/lib/gpuready"
CERTIFICATE = f"{STATE_DIR}/certificate.json"
LOG = "/var/log/gpuready-bootstrap.log"
VENV = "/opt/gpuready/tool"
PREFIX = "/opt/gpuready/env"
PACKAGES = ("python3", "python3-venv", "python3-pip", "git", "ca-certificates")
BUNDLE_PACKAGES: tuple[str, ...] = ()


@dataclass(frozen=True)
class Source:
    """Where the instance gets gpuready: a git repository or a package specification."""

    repo: str | None = None
    ref: str | None = None
    package: str | None = None
    bundle_url: str | None = None  # a `gpuready bundle --tar` file on an internal mirror or bucket
    bundle_sha256: str | None = None
    allow_insecure: bool = False  # --allow-insecure-source: a plain-text source was accepted


def bootstrap_script() -> str:
    """scripts/bootstrap.sh, as shipped inside the package."""
    return resources.files("gpuready._scripts").joinpath("bootstrap.sh").read_text(encoding="utf-8")


INSECURE_HINT = "or pass --allow-insecure-source (a trusted network only)"


def _plain_text(url: str) -> str | None:
    """"http" or "git" when `url` is fetched as plain text (anyone on the way can alter it)."""
    scheme = urlsplit(url.strip()).scheme.lower()
    return scheme if scheme in ("http", "git") else None


def check_bundle_url(url: str, sha256: str | None, allow_insecure: bool = False) -> None:
    """A bundle is fetched over HTTPS, or over plain HTTP only with its sha256 to check it by
    (or with --allow-insecure-source)."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc or re.search(r"\s", url):
        raise UsageError(f"--bundle-url: {url!r} is not an https:// URL of a bundle (.tar)")
    if sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise UsageError(f"--bundle-sha256: {sha256!r} is not a sha256 (64 hex digits)")
    if parts.scheme == "http" and sha256 is None and not allow_insecure:
        raise UsageError(f"--bundle-url: {url} is plain http, which anyone on the way can alter; use https "
                         f"or give --bundle-sha256 (invoke bundle --tar prints it), {INSECURE_HINT}")


def check_source(repo: str | None, ref: str | None, package: str | None, bundle_url: str | None = None,
                 bundle_sha256: str | None = None, allow_insecure: bool = False) -> Source:
    """The checked source. Plain-text ones (an http:// or git:// repository, an http:// package)
    are refused unless `allow_insecure`: the instance would run, as root, whatever code anyone on
    the way handed over."""
    if bundle_url or bundle_sha256:
        if repo or package or ref:
            raise UsageError("--bundle-url installs from the bundle alone: give it without --repo, --ref "
                             "or --package")
        if not bundle_url:
            raise UsageError("--bundle-sha256 needs --bundle-url")
        check_bundle_url(bundle_url, bundle_sha256, allow_insecure)
        return Source(bundle_url=bundle_url, bundle_sha256=bundle_sha256,
                      allow_insecure=allow_insecure and _plain_text(bundle_url) is not None)
    if bool(repo) == bool(package):
        raise UsageError("give --repo URL (a git repository), --package SPEC (e.g. 'gpuready==0.1.0' "
                         "or a wheel's https URL) or --bundle-url URL, exactly one")
    if repo:
        parts = urlsplit(repo)
        scp_like = re.fullmatch(r"[\w.-]+@[\w.-]+:[\w./~-]+", repo)
        if not scp_like and (parts.scheme not in ("https", "http", "ssh", "git") or not parts.netloc):
            raise UsageError(f"--repo: {repo!r} is not a git URL (https://host/owner/repo.git or git@host:owner/repo)")
        if re.search(r"\s", repo):
            raise UsageError(f"--repo: {repo!r} contains white space")
        plain = _plain_text(repo)
        if plain and not allow_insecure:
            raise UsageError(f"--repo: {repo} is plain text ({plain}://), which anyone on the way can alter; "
                             f"use https:// or ssh, {INSECURE_HINT}")
    if ref is not None:
        if not repo:
            raise UsageError("--ref needs --repo")
        if not re.fullmatch(r"[\w][\w./+-]*", ref) or ".." in ref:
            raise UsageError(f"--ref: {ref!r} is not a branch or tag name")
    if package:
        if re.match(r"https?://", package):
            if re.search(r"\s", package):
                raise UsageError(f"--package: {package!r} contains white space")
        else:
            try:
                Requirement(package)
            except InvalidRequirement as exc:
                why = str(exc).splitlines()[0]
                raise UsageError(f"--package: {package!r} is not a requirement or a wheel URL: {why}") from None
    package_url = (package if re.match(r"https?://", package) else Requirement(package).url or "") if package else ""
    if _plain_text(package_url) and not allow_insecure:
        raise UsageError(f"--package: {package_url} is fetched over plain http, which anyone on the way can "
                         f"alter; use https://, {INSECURE_HINT}")
    plain = bool(_plain_text(repo or "") or _plain_text(package_url))
    return Source(repo=repo or None, ref=ref, package=package or None, allow_insecure=allow_insecure and plain)


def setup_flags(*, driver: str | None = None, gpu: str | None = None, python: str | None = None,
                platform: str | None = None, wsl: bool = False, flavor: str | None = None,
                tf: str | None = None, level: str | None = None, allow_cpu: bool = False) -> list[str]:
    """`setup`'s flags for the instance, each value checked as `plan` checks it (UsageError)."""
    out: list[str] = []
    if driver is not None:
        flags.parse_driver(driver)
        out += ["--driver", driver.strip()]
    if gpu is not None:
        out += ["--gpu", ",".join(flags.parse_gpus(gpu))]
    if python is not None:
        out += ["--python", flags.parse_python(python)]
    if platform is not None:
        out += ["--platform", flags.parse_platform(platform)]
        if platform not in ("linux-64", "linux-aarch64"):
            raise UsageError(f"--platform: cloud-init user-data provisions Linux instances, not {platform}")
    if wsl:
        raise UsageError("--wsl: a cloud instance is not WSL2")
    if flavor is not None:
        out += ["--flavor", flags.parse_flavor(flavor)]
    if tf is not None:
        flags.parse_tf_spec(tf)
        out += ["--tf", tf.strip()]
    if level is not None:
        out += ["--level", str(flags.parse_level(level))]
    if allow_cpu:
        out.append("--allow-cpu")
    return out


def bootstrap_command(source: Source, setup_args: list[str], *, index_url: str | None = None,
                      script: str = SCRIPT_PATH, venv: str = VENV, prefix: str = PREFIX,
                      state_dir: str = STATE_DIR, log: str = LOG, certificate: str = CERTIFICATE) -> str:
    """The one shell command runcmd runs, every word quoted with shlex."""
    argv = [script]
    if source.bundle_url:
        argv += ["--bundle-url", source.bundle_url]
        if source.bundle_sha256:
            argv += ["--bundle-sha256", source.bundle_sha256]
    elif source.repo:
        argv += ["--repo", source.repo]
        if source.ref:
            argv += ["--ref", source.ref]
    else:
        argv += ["--package", source.package or ""]
    if source.allow_insecure:
        argv.append("--allow-insecure-source")
    argv += ["--venv", venv, "--prefix", prefix, "--state-dir", state_dir, "--log", log,
             "--certificate", certificate]
    if index_url:
        argv += ["--index-url", index_url]
    argv += ["--", *setup_args]
    return shlex.join(argv)


class _Dumper(yaml.SafeDumper):
    """YAML with multi-line strings (the bootstrap script) as literal blocks."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _represent_str)


def user_data(source: Source, setup_args: list[str], *, index_url: str | None = None,
              script_text: str | None = None, **paths: str) -> str:
    """The `#cloud-config` document (pure: no I/O beyond reading the shipped script)."""
    script = script_text if script_text is not None else bootstrap_script()
    if "\t" in script:
        raise ValueError("the bootstrap script must not contain tabs (YAML block scalar)")
    command = bootstrap_command(source, setup_args, index_url=index_url, **paths)
    if source.bundle_url:
        where = f"the bundle {source.bundle_url} (no package index: the bundle installs offline)"
    elif source.repo:
        where = source.repo + (f" ({source.ref})" if source.ref else "")
    else:
        where = source.package
    state = paths.get("state_dir", STATE_DIR)
    header = "\n".join([
        "#cloud-config",
        "# gpuready: a certified TensorFlow GPU environment at first boot.",
        f"# gpuready from: {where}",
        f"# Result: {state}/SUCCESS or {state}/FAILED, {state}/result.json,",
        f"#         the certificate at {paths.get('certificate', CERTIFICATE)}; log {paths.get('log', LOG)}",
        "#         (and cloud-init's own log: `cloud-init status --long`).",
    ]) + "\n"
    document = {
        # From a bundle the image's python3 is all it takes: no package mirror is contacted.
        "package_update": not source.bundle_url,
        "packages": list(BUNDLE_PACKAGES if source.bundle_url else PACKAGES),
        "write_files": [{"path": paths.get("script", SCRIPT_PATH), "owner": "root:root",
                         "permissions": "0755", "content": script}],
        "runcmd": [command],
    }
    if not document["packages"]:
        del document["packages"]
    return header + yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=10_000, allow_unicode=False)
