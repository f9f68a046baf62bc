"""`invoke certify` and `invoke doctor`: prove an environment trains on the GPU, or say why not."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from invoke import task
from invoke.exceptions import Exit
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .. import certify as certify_mod
from .. import diagnosis as diag
from .. import prefix as layout
from ..certificate import CERTIFIED, CPU_ONLY, FAIL, PASS, PROBLEM, SKIP, WARN, Certificate, Check, Finding
from ..config import settings
from ..errors import EXIT_FAILED, EXIT_OK, UsageError
from ..facts import HostFacts
from ..junit import write_junit
from ._common import cli_errors, load_matrix, print_json

CERTIFY_HELP = {
    "env": "the environment's name (under the configured prefix root)",
    "prefix": "the environment's directory (any Python environment with TensorFlow)",
    "level": "0 static, 1 smoke, 2 train (default), 3 multi-GPU",
    "allow-cpu": "a cpu-only result exits 0 instead of 3",
    "json": "print the certificate as JSON",
    "junit": "also write the checks as JUnit XML to this file",
    "verify": "only say whether the existing certificate still holds (no TensorFlow import)",
    "timeout": f"time limit per level in seconds (default {certify_mod.DEFAULT_LEVEL_TIMEOUT:g}, "
               "or the gpuready.certify_timeout setting)",
}
DOCTOR_HELP = {
    "env": "diagnose the environment of this name",
    "prefix": "diagnose the environment in this directory",
    "log": "diagnose a log file (e.g. one a user pasted), without any environment",
    "json": "print the diagnosis as JSON",
}
STYLE = {PASS: "green", FAIL: "bold red", SKIP: "dim", WARN: "yellow"}


# ----------------------------------------------------------------------------- shared


def _host(c: Any) -> HostFacts:
    from .. import detect

    return detect.detect_host(load_matrix(c))


def resolve_prefix(c: Any, env: str | None, prefix: str | None) -> Path:
    """--env NAME or --prefix DIR (not both); neither: the environment planned for this host."""
    if env and prefix:
        raise UsageError("give --env or --prefix, not both")
    if prefix:
        return Path(prefix).expanduser().absolute()
    root = settings(c.config).get("prefix_root")
    if env:
        return layout.default_prefix(env, root)
    from ..plan import NoPlan, make_plan

    try:
        plan = make_plan(_host(c), load_matrix(c))
    except NoPlan:
        raise UsageError("no environment given and none can be planned for this host: "
                         "give --env NAME or --prefix DIR") from None
    return layout.default_prefix(plan.env, root)


def _level(value: Any) -> int:
    if value is None:
        return certify_mod.DEFAULT_LEVEL
    try:
        level = int(value)
    except (TypeError, ValueError):
        raise UsageError(f"--level must be 0, 1, 2 or 3, not {value!r}") from None
    if level not in certify_mod.LEVELS:
        raise UsageError(f"--level must be 0, 1, 2 or 3, not {level}")
    return level


def _timeout(c: Any, value: Any) -> float | None:
    if value is None:
        value = settings(c.config).get("certify_timeout")
        if value is None:
            return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"--timeout must be a number of seconds, not {value!r}") from None
    if not seconds > 0:
        raise UsageError(f"--timeout must be positive, not {value}")
    return seconds


def _err_console() -> Console:
    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


def _progress(out: Console):
    def on_event(kind: str, data: Any) -> None:
        if kind == "level":
            out.print(f"[bold]level {data}[/]")
        elif kind == "check":
            detail = escape(f" ({data.reason})") if data.reason else ""
            out.print(f"  {data.name}: [{STYLE[data.status]}]{data.status}[/] {data.seconds:.1f} s{detail}")
    return on_event


# ----------------------------------------------------------------------------- rendering


def _summary(check: Check) -> str:
    """A short line for a check that passed (a failure or skip shows its reason)."""
    if check.reason:
        return check.reason
    d = check.details
    if check.name == "python":
        return f"{d.get('python')} (Python {d.get('version')}, {d.get('packages')} packages)"
    if check.name == "packages-match-lock":
        return f"{d.get('expected')} packages as locked"
    if check.name == "import":
        return f"TensorFlow {d.get('version')}, Keras {d.get('keras')} (import {d.get('import_seconds')} s)"
    if check.name == "build-info":
        if d.get("is_cuda_build"):
            return f"CUDA {d.get('cuda_version')}, cuDNN {d.get('cudnn_version')}"
        return "CPU build"
    if check.name == "gpus-visible":
        return ", ".join(f"{g.get('device_name') or g.get('name')} ({g.get('compute_capability')})"
                         for g in d.get("gpus") or [])
    if check.name in ("train", "mixed-precision", "xla", "multi-gpu") and "accuracy" in d:
        ips = d.get("images_per_second")
        return (f"accuracy {d['accuracy']:.3f}, loss {d['initial_loss']:.3g} -> {d['final_loss']:.3g}"
                + (f", {ips:,.0f} images/s" if ips else ""))
    if check.name == "placement":
        return ", ".join(d.get("variable_devices") or [])
    if check.name == "throughput":
        return _throughput_text(d.get("gpu_images_per_second"), d.get("cpu_images_per_second"), d.get("ratio"))
    return ""


def _throughput_text(gpu: float | None, cpu: float | None, ratio: float | None) -> str:
    if gpu and cpu:
        return f"GPU {gpu:,.0f} images/s, CPU {cpu:,.0f} images/s: {ratio:g}x"
    if cpu:
        return f"CPU {cpu:,.0f} images/s (no GPU to compare)"
    if gpu:
        return f"GPU {gpu:,.0f} images/s"
    return "not measured"


def checks_table(checks: list[Check]) -> Table:
    table = Table(show_lines=False, title_justify="left")
    for name, kw in (("level", {"justify": "right"}), ("check", {}), ("status", {}),
                     ("s", {"justify": "right"}), ("detail", {"overflow": "fold"})):
        table.add_column(name, **kw)
    for check in checks:
        table.add_row(str(check.level), check.name, f"[{STYLE[check.status]}]{check.status}[/]",
                      f"{check.seconds:.1f}", escape(_summary(check)))
    return table


def show_findings(findings: list[Finding], out: Console) -> None:
    problems = [f for f in findings if f.severity == PROBLEM]
    if not findings:
        out.print("Diagnosis: no known failure signature found.")
        return
    for i, finding in enumerate(problems):
        label = "Cause" if i == 0 else "Also"
        out.print(f"[bold red]{label}:[/] [bold]{escape(finding.title)}[/]. {escape(finding.cause)}")
        out.print(f"  [bold]Next step:[/] {escape(finding.fix)}")
        if finding.evidence:
            out.print(f"  [dim]seen: {escape(finding.evidence)}[/]")
    for finding in findings:
        if finding.severity != PROBLEM:
            out.print(f"[cyan]Note:[/] {escape(finding.title)}: {escape(finding.note or finding.cause)}")


def show_certificate(cert: Certificate, out: Console, path: Path | None) -> None:
    where = f"{cert.prefix}" + (f" (env {cert.env})" if cert.env else "")
    out.print(f"[bold]Certification of {escape(where)}, level {cert.level}[/]")
    out.print(checks_table(cert.checks))
    if cert.status == CERTIFIED:
        version = cert.tensorflow.get("version")
        out.print(f"Status: [bold green]certified[/]: " + (f"TensorFlow {version} trains" if version else "ready")
                  + f" on {len(cert.gpus) or 'the'} GPU(s) (level {cert.level}).")
    elif cert.status == CPU_ONLY:
        tail = "" if cert.allow_cpu else " Exit 3: pass --allow-cpu to accept it."
        out.print(f"Status: [bold yellow]cpu-only[/]: no GPU took part; the checks ran on the CPU.{tail}")
    else:
        failed = [c.name for c in cert.checks if c.status == FAIL]
        out.print(f"Status: [bold red]failed[/]: {len(failed)} check(s) failed: {', '.join(failed)}.")
    t = cert.throughput
    if t and (t.gpu_images_per_second or t.cpu_images_per_second):
        out.print("Throughput: " + _throughput_text(t.gpu_images_per_second, t.cpu_images_per_second, t.ratio))
    show_findings(cert.diagnosis, out)
    if path is not None:
        out.print(escape(f"Certificate: {path}" + (f"; TensorFlow log: {cert.log}" if cert.log else "")))


# ----------------------------------------------------------------------------- tasks


@task(help=CERTIFY_HELP)
@cli_errors
def certify(c, env=None, prefix=None, level=None, allow_cpu=False, json=False, junit=None, verify=False,
            timeout=None):
    """Prove that an environment trains a Conv2D model on the GPU; write its certificate."""
    level = _level(level)
    seconds = _timeout(c, timeout)
    target = resolve_prefix(c, env, prefix)
    if verify:
        certify_mod.environment_python(target)  # a missing prefix is bad input (exit 2)
        result = certify_mod.verify(target, _host(c))
        if json:
            print_json(result.to_dict())
        else:
            out = Console(highlight=False, soft_wrap=True)
            if result.ok:
                cert = result.certificate
                out.print(f"[green]The certificate still holds[/] ({cert.status}, level {cert.level}, "
                          f"{cert.created}): {escape(str(result.path))}")
            else:
                out.print(f"[red]The certificate does not hold[/] for {escape(str(target))}:")
                for reason in result.reasons:
                    out.print(f"  - {escape(reason)}")
        raise Exit(code=EXIT_OK if result.ok else EXIT_FAILED)

    certify_mod.environment_python(target)
    err = _err_console()
    err.print(escape(f"Certifying {target} up to level {level} ..."))
    cert = certify_mod.certify(target, level=level, allow_cpu=allow_cpu, timeout=seconds,
                               host=_host(c), on_event=_progress(err))
    if junit:
        try:
            write_junit(cert, junit)
        except OSError as exc:
            raise UsageError(f"cannot write the JUnit file {junit}: {exc}") from None
    path = layout.certificate_path(target)
    if json:
        print_json(cert.to_dict())
    else:
        show_certificate(cert, Console(highlight=False, soft_wrap=True), path if path.exists() else None)
    code = cert.exit_code()
    if code:
        raise Exit(code=code)


@task(help=DOCTOR_HELP)
@cli_errors
def doctor(c, env=None, prefix=None, log=None, json=False):
    """Diagnose an environment, a log file, or this host, without training anything."""
    out = Console(highlight=False, soft_wrap=True)
    findings: list[Finding] = []
    checks: list[Check] = []
    probe: dict[str, Any] | None = None
    sources = []
    if log:
        path = Path(log).expanduser()
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise UsageError(f"cannot read the log file {path}: {exc.strerror or exc}") from None
        findings += diag.diagnose(text)  # a pasted log may come from any machine: no host context
        sources.append(f"log {path}")
    if env or prefix or not log:
        host = _host(c)
        if env or prefix:
            target = resolve_prefix(c, env, prefix)
            python = certify_mod.environment_python(target)
            sources.append(f"environment {target}")
            checks, env_findings, probe = _doctor_environment(target, python, host)
            findings += env_findings
        else:
            sources.append("this host")
            text = "\n".join(p.detail for p in host.probes)
            findings += diag.diagnose(text, host_has_gpu=bool(host.gpus))
    findings = diag.merge(findings)
    problem = any(f.severity == PROBLEM for f in findings) or any(ch.status == FAIL for ch in checks)
    if json:
        print_json({"sources": sources, "problem": problem, "checks": [_check_dict(ch) for ch in checks],
                    "diagnosis": [f.__dict__ for f in findings], "libraries": probe})
    else:
        out.print(f"[bold]Diagnosis of {escape(', '.join(sources))}[/]")
        if checks:
            out.print(checks_table(checks))
        if probe and probe.get("libraries"):
            failed = probe.get("first_failure")
            out.print("CUDA libraries: " + (f"[red]{escape(failed['name'])} does not load[/]" if failed
                                            else "[green]all load[/]"))
        show_findings(findings, out)
    if problem:
        raise Exit(code=EXIT_FAILED)


def _check_dict(check: Check) -> dict[str, Any]:
    return dict(check.__dict__)


def _doctor_environment(target: Path, python: Path, host: HostFacts):
    """Level 0 and the level-1 smoke check (no training), the library probe, the diagnosis."""
    record = layout.read_install_record(target)
    installed = certify_mod.installed_packages(target, (record or {}).get("flavor"))
    checks = certify_mod.level0(target, python, record, host, installed)
    plan = certify_mod.plan_of(record)
    env = certify_mod.child_environment(target)
    with tempfile.TemporaryDirectory(prefix="gpuready-doctor-") as tmp:
        log = Path(tmp) / "doctor.log"
        run = certify_mod.run_check(python, 1, expect=certify_mod.expectations(plan, host), log=log,
                                    limits={1: certify_mod.DEFAULT_LEVEL_TIMEOUT}, env=env)
        checks += run.checks
        probe = diag.probe_libraries(python, env=env)
        findings = certify_mod.diagnose_run(run, log=log, host=host, python=python, prefix=target,
                                            probe=probe)
    findings = diag.merge(findings, diag.library_findings(probe, host_has_gpu=bool(host.gpus)))
    return checks, findings, probe


__all__ = ["certify", "doctor", "resolve_prefix", "show_certificate"]
