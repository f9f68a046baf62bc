"""The fleet: gpuready's setup on many hosts over SSH with Fabric, and one table of certificates.

Run from a checkout, on a control machine that needs only Fabric (no gpuready, no GPU):

    python3 -m venv ~/fleet && ~/fleet/bin/pip install fabric
    ~/fleet/bin/fab -i ~/.ssh/id_ed25519 setup \\
        --hosts root@gpu1,root@gpu2,ubuntu@gpu3:2222 --repo https://github.com/OWNER/gpuready.git \\
        --flags "--flavor pip" --out certificates/
    ~/fleet/bin/fab certificates --hosts root@gpu1,root@gpu2    # gather again, no setup
    ~/fleet/bin/fab setup --hosts root@gpu1,root@gpu2 --bundle b/    # hosts with no package index

With --bundle DIR (or DIR.tar, from `invoke bundle --out DIR [--tar]`) the bundle is copied to each
host over SSH as one tar file and its install.sh builds and certifies there with no network:
the hosts need only python3.

`setup` copies scripts/bootstrap.sh to each host and runs it there, in parallel: the same
steps as cloud-init's first boot (`invoke cloud.user-data`) and the same layout (tool venv
/opt/gpuready/tool, environment /opt/gpuready/env, result and certificate under
/var/lib/gpuready), so a fleet and a cloud instance are read the same way. Then it reads each
host's result.json and certificate.json and prints one table (or --json); --out DIR keeps every
certificate as DIR/<host>.json. The task exits 1 unless every host is certified.

The system paths need root: log in as root, or pass --sudo (Fabric asks for the password with
`fab --prompt-for-sudo-password`), or point --state-dir / --venv / --prefix somewhere the user
may write; "{host}" in those paths becomes the host's name (for home directories shared by NFS).
Connection settings come from Fabric as usual: user@host:port, -i KEY, ~/.ssh/config.
"""

from __future__ import annotations

import json as jsonlib
import shlex
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fabric import Connection, task
from invoke.exceptions import Exit

HERE = Path(__file__).resolve().parent
BOOTSTRAP = HERE / "scripts" / "bootstrap.sh"
STATE_DIR = "/var/lib/gpuready"  # the same paths as gpuready.cloud
VENV = "/opt/gpuready/tool"
PREFIX = "/opt/gpuready/env"
COLUMNS = ("host", "result", "certificate", "tensorflow", "cuda", "gpus", "driver", "gpu img/s", "gpu/cpu", "note")

PATH_HELP = ' ("{host}" becomes the host\'s name)'
HELP = {
    "hosts": "comma-separated hosts: host, user@host or user@host:port",
    "package": "install gpuready on each host with pip from this requirement or wheel URL",
    "repo": "install gpuready on each host from this git repository",
    "ref": "the branch or tag of --repo",
    "flags": "setup's flags, as one string (e.g. \"--flavor pip --level 2\")",
    "state_dir": f"where each host keeps result.json, the markers and the certificate{PATH_HELP}",
    "venv": f"gpuready's own virtual environment on each host{PATH_HELP}",
    "prefix": f"the TensorFlow environment on each host{PATH_HELP}",
    "interpreter": "the Python 3.10+ on the hosts (default: python3)",
    "sudo": "run the bootstrap with sudo",
    "parallel": "hosts at a time (default 8)",
    "json": "print the rows as JSON instead of a table",
    "out": "save each host's certificate as OUT/<host>.json",
    "bundle": "a bundle (invoke bundle --out DIR [--tar]): copied to each host, installed with no network",
}


def _hosts(hosts: str | None) -> list[str]:
    found = [h.strip() for h in (hosts or "").split(",") if h.strip()]
    if not found:
        raise Exit("fleet: give --hosts host1,host2,...", code=2)
    return found


def _label(conn: Connection) -> str:
    return conn.host if conn.port == 22 else f"{conn.host}_{conn.port}"


def _paths(conn: Connection, state_dir: str, venv: str, prefix: str) -> dict[str, str]:
    name = _label(conn)
    return {"state_dir": state_dir.replace("{host}", name), "venv": venv.replace("{host}", name),
            "prefix": prefix.replace("{host}", name)}


def _read_json(conn: Connection, path: str, sudo: bool) -> dict[str, Any] | None:
    runner = conn.sudo if sudo else conn.run
    result = runner(f"cat {shlex.quote(path)}", hide=True, warn=True, in_stream=False)
    if not result.ok:
        return None
    try:
        data = jsonlib.loads(result.stdout)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _row(host: str, result: dict[str, Any] | None, cert: dict[str, Any] | None, note: str = "") -> dict[str, Any]:
    cert = cert or {}
    plan = cert.get("plan") or {}
    driver = ((cert.get("host") or {}).get("driver") or {}).get("version")
    gpus = cert.get("gpus") or []
    throughput = cert.get("throughput") or {}
    if result and not note and result.get("status") != "success":
        note = f"failed at {result.get('step')} (exit {result.get('exit_code')}); log {result.get('log')}"
    return {
        "host": host,
        "result": (result or {}).get("status", "unknown"),
        "certificate": cert.get("status", "none"),
        "tensorflow": (cert.get("tensorflow") or {}).get("version") or plan.get("tensorflow"),
        "cuda": plan.get("cuda"),
        "gpus": len(gpus) if cert else None,
        "driver": driver,
        "gpu img/s": throughput.get("gpu_images_per_second"),
        "gpu/cpu": throughput.get("ratio"),
        "note": note,
        "certificate_json": cert or None,
    }


def _gather(conn: Connection, host: str, paths: dict[str, str], sudo: bool, note: str = "") -> dict[str, Any]:
    result = _read_json(conn, f"{paths['state_dir']}/result.json", sudo)
    cert = _read_json(conn, f"{paths['state_dir']}/certificate.json", sudo)
    if result is None and not note:
        note = f"no {paths['state_dir']}/result.json: not provisioned yet?"
    return _row(host, result, cert, note)


def _bundle_tar(bundle: str, workdir: Path) -> Path:
    """The bundle as one tar file: DIR.tar as given, or a folder packed once for every host."""
    import tarfile

    path = Path(bundle).expanduser()
    if path.is_file() and tarfile.is_tarfile(path):
        return path
    if not (path / "install.sh").is_file() or not (path / "manifest.json").is_file():
        raise Exit(f"fleet: --bundle {bundle} is not a bundle (no install.sh and manifest.json; "
                   "make one with invoke bundle --out DIR)", code=2)
    packed = workdir / f"{path.name}.tar"
    with tarfile.open(packed, "w") as archive:
        archive.add(path, arcname=path.name)
    return packed


def _put(conn: Connection, local: Path, remote: str, sudo: bool) -> None:
    if sudo:  # put cannot write where only root may: stage it, then move it with sudo
        staged = conn.run("mktemp", hide=True, in_stream=False).stdout.strip()
        conn.put(str(local), remote=staged)
        conn.sudo(f"mv {shlex.quote(staged)} {shlex.quote(remote)}", hide=True, in_stream=False)
    else:
        conn.put(str(local), remote=remote)


def _provision(conn: Connection, host: str, source: list[str], setup_flags: list[str], paths: dict[str, str],
               interpreter: str | None, sudo: bool, bundle: Path | None = None) -> dict[str, Any]:
    runner = conn.sudo if sudo else conn.run
    state = paths["state_dir"]
    script = f"{state}/bootstrap.sh"
    runner(f"mkdir -p {shlex.quote(state)}", hide=True, in_stream=False)
    _put(conn, BOOTSTRAP, script, sudo)
    if bundle is not None:
        remote = f"{state}/bundle.tar"
        print(f"{host}: copying the bundle ({bundle.stat().st_size / 1e6:.0f} MB) ...", file=sys.stderr, flush=True)
        _put(conn, bundle, remote, sudo)
        source = ["--bundle-file", remote]
    argv = ["bash", script, *source, "--venv", paths["venv"], "--prefix", paths["prefix"],
            "--state-dir", state, "--certificate", f"{state}/certificate.json"]
    if interpreter:
        argv += ["--interpreter", interpreter]
    argv += ["--", *setup_flags]
    print(f"{host}: provisioning ...", file=sys.stderr, flush=True)
    run = runner(shlex.join(argv), hide=True, warn=True, in_stream=False)
    print(f"{host}: bootstrap exited {run.exited}", file=sys.stderr, flush=True)
    # 0, 1 and 3 are setup's answers, explained by result.json; anything else is the bootstrap's own.
    last = (run.stderr.strip() or run.stdout.strip()).splitlines()[-1:] or [""]
    note = "" if run.exited in (0, 1, 3) else f"bootstrap exit {run.exited}: {last[0][:120]}"
    return _gather(conn, host, paths, sudo, note)


def _each(c: Any, hosts: list[str], parallel: int, work) -> list[dict[str, Any]]:
    def one(host: str) -> dict[str, Any]:
        conn = Connection(host, config=c.config)
        try:
            return work(conn, host)
        except Exception as exc:  # one unreachable host is a row, not the end of the run
            return _row(host, None, None, note=f"unreachable: {type(exc).__name__}: {exc}".splitlines()[0][:160])
        finally:
            conn.close()

    with ThreadPoolExecutor(max_workers=max(1, int(parallel))) as pool:
        return list(pool.map(one, hosts))


def _show(rows: list[dict[str, Any]], as_json: bool, out: str | None) -> None:
    if out:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        for row in rows:
            if row["certificate_json"]:
                name = row["host"].replace("/", "_").replace(":", "_")
                (folder / f"{name}.json").write_text(jsonlib.dumps(row["certificate_json"], indent=2) + "\n")
    if as_json:
        print(jsonlib.dumps([{k: v for k, v in r.items() if k != "certificate_json"} for r in rows], indent=2))
        return
    cells = [[("" if r[k] is None else str(r[k])) for k in COLUMNS] for r in rows]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(COLUMNS)]
    print("  ".join(h.upper().ljust(w) for h, w in zip(COLUMNS, widths)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())


def _finish(rows: list[dict[str, Any]]) -> None:
    bad = [r["host"] for r in rows if r["certificate"] != "certified"]
    if bad:
        raise Exit(f"fleet: not certified: {', '.join(bad)}", code=1)


@task(help=HELP)
def setup(c, hosts=None, package=None, repo=None, ref=None, flags="", state_dir=STATE_DIR, venv=VENV,
          prefix=PREFIX, interpreter=None, sudo=False, parallel=8, json=False, out=None, bundle=None):
    """Install gpuready and run `setup --yes` on every host; print one table of certificates."""
    import tempfile

    targets = _hosts(hosts)
    if sum(bool(x) for x in (package, repo, bundle)) != 1:
        raise Exit("fleet: give --package SPEC, --repo URL or --bundle DIR, exactly one", code=2)
    if ref and not repo:
        raise Exit("fleet: --ref needs --repo", code=2)
    source = (["--package", package] if package else
              ["--repo", repo, *(["--ref", ref] if ref else [])] if repo else [])  # a bundle: set per host
    setup_flags = shlex.split(flags or "")

    with tempfile.TemporaryDirectory(prefix="gpuready-fleet-") as tmp:
        tarball = _bundle_tar(bundle, Path(tmp)) if bundle else None

        def work(conn: Connection, host: str) -> dict[str, Any]:
            return _provision(conn, host, source, setup_flags, _paths(conn, state_dir, venv, prefix),
                              interpreter, sudo, tarball)

        rows = _each(c, targets, parallel, work)
    _show(rows, json, out)
    _finish(rows)


@task(help={k: HELP[k] for k in ("hosts", "state_dir", "sudo", "parallel", "json", "out")})
def certificates(c, hosts=None, state_dir=STATE_DIR, sudo=False, parallel=8, json=False, out=None):
    """Gather every host's last result and certificate into one table (no setup)."""
    targets = _hosts(hosts)

    def work(conn: Connection, host: str) -> dict[str, Any]:
        return _gather(conn, host, _paths(conn, state_dir, "", ""), sudo)

    rows = _each(c, targets, parallel, work)
    _show(rows, json, out)
    _finish(rows)
