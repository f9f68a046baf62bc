"""Human output: small rich tables and a few lines, for the terminal.

Every value that comes from outside gpuready (GPU names, paths, versions, tool output, log
lines) goes through `escape`, so a "[/bold]" in a GPU name is printed, never interpreted.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..progress import Steps
from ..errors import EXIT_CPU_ONLY, EXIT_FAILED
from ..model.certificate import (CERTIFIED, CPU_ONLY, FAIL, NOT_CERTIFIED, PASS, PROBLEM, SKIP, WARN, Certificate,
                                 Check, Finding)
from ..model.facts import HostFacts
from ..model.plan import NoPlan, Plan, Rejection

if TYPE_CHECKING:
    from ..pipeline import Outcome

STYLE = {PASS: "green", FAIL: "bold red", SKIP: "dim", WARN: "yellow"}


def console(stderr: bool = False) -> Console:
    import sys

    # emoji=False: a ":cd:" in a path or a GPU name is text too, as "[/bold]" is (`e`).
    return Console(file=sys.stderr if stderr else None, highlight=False, soft_wrap=True, emoji=False)


def e(value: Any) -> str:
    """Outside text, as text."""
    return escape(str(value))


# --------------------------------------------------------------------------- plan


def show_plan(plan: Plan, out: Console | None = None) -> None:
    out = out or console()
    if plan.device == "gpu":
        head = (f"[bold]Plan:[/] TensorFlow {e(plan.tensorflow)} on the GPU, Python {e(plan.python)}, "
                f"CUDA {e(plan.cuda)}, cuDNN {e(plan.cudnn)}, {e(plan.flavor)} flavor -> env [bold]{e(plan.env)}[/]")
    else:
        head = (f"[bold]Plan:[/] {e(plan.distribution)} {e(plan.tensorflow)} on the CPU, Python {e(plan.python)}, "
                f"{e(plan.flavor)} flavor -> env [bold]{e(plan.env)}[/]")
    out.print(head)
    for reason in plan.reasons:
        out.print(f"  - {e(reason)}")
    if plan.requirements:
        out.print("  packages: " + e(", ".join(plan.requirements)))
    if plan.conda_packages:
        out.print(f"  conda ({e(plan.conda_channel)}): " + e(", ".join(plan.conda_packages)))
    for warning in plan.warnings:
        out.print(f"[yellow]warning[/] {e(warning.code)}: {e(warning.message)}")
    show_rejected(plan.rejected, out)


def show_rejected(rejected: tuple[Rejection, ...], out: Console) -> None:
    if not rejected:
        return
    table = Table(title="Rejected (newest first)", show_lines=False, title_justify="left")
    table.add_column("TensorFlow")
    table.add_column("code")
    table.add_column("why")
    for r in rejected:
        table.add_row(e(r.tensorflow), e(r.code), e(r.message))
    out.print(table)


def show_no_plan(error: NoPlan, out: Console | None = None) -> None:
    out = out or console()
    out.print("[bold red]No installable plan.[/]")
    for reason in error.reasons:
        out.print(f"  - {e(reason)}")
    if error.ways_out:
        out.print("[bold]Ways out:[/]")
        for way in error.ways_out:
            out.print(f"  - {e(way)}")
    show_rejected(error.rejected, out)


# --------------------------------------------------------------------------- detect


def show_facts(facts: HostFacts, out: Any = None) -> None:
    out = out or console()
    driver = facts.driver
    if driver.present:
        cuda = f"CUDA {driver.cuda}" if driver.cuda else "CUDA unknown"
        driver_text = f"{driver.version} ({cuda}; from {driver.source})"
        if facts.wsl:
            driver_text += ", the Windows driver"
    else:
        driver_text = "none found"
    if driver.kernel_module and driver.kernel_module != driver.version:
        driver_text += f"; kernel module {driver.kernel_module}"
    container = facts.container
    if container.detected:
        container_text = (f"{container.kind}, " +
                          ("/dev/nvidia* present" if container.dev_nvidia else "no /dev/nvidia* device nodes"))
    else:
        container_text = "none detected"

    table = Table(title="Host", title_justify="left", show_header=False)
    table.add_column("fact", style="bold")
    table.add_column("value")
    table.add_row("platform", e(facts.platform))
    table.add_row("WSL", "yes (WSL2: the Windows driver column applies)" if facts.wsl else "no")
    table.add_row("Python", e(facts.python))
    table.add_row("glibc", e(facts.glibc or "none (not glibc)"))
    table.add_row("NVIDIA driver", e(driver_text))
    table.add_row("conda", e("\n".join(facts.conda) or "none on PATH"))
    table.add_row("container", e(container_text))
    if facts.jetson:
        table.add_row("Jetson", e(f"yes (L4T R{facts.l4t})" if facts.l4t else "yes"))
    out.print(table)

    if facts.gpus:
        gpus = Table(title="GPUs", title_justify="left")
        for column in ("index", "name", "compute capability", "memory (MiB)", "UUID", "state"):
            gpus.add_column(column)
        for gpu in facts.gpus:
            state = "[green]ok[/]" + (" (MIG on)" if gpu.mig else "") if gpu.healthy else f"[red]{e(gpu.problem or 'not usable')}[/]"
            gpus.add_row(str(gpu.index), e(gpu.name or "unknown"), e(gpu.compute_capability or "unknown"),
                         "unknown" if gpu.memory_mib is None else str(gpu.memory_mib), e(gpu.uuid or "unknown"), state)
        out.print(gpus)
    else:
        out.print("GPUs: none visible")
    for mig in facts.mig_devices:
        out.print(e(f"  MIG instance {mig.index} of GPU {mig.gpu}: {mig.profile or 'profile unknown'}, "
                    f"{'memory unknown' if mig.memory_mib is None else f'{mig.memory_mib} MiB'}, {mig.uuid or 'UUID unknown'}"))
    for note in facts.notes:
        label = "[bold red]Problem:[/]" if note.problem else "[cyan]Note:[/]"
        out.print(f"{label} [bold]{e(note.title)}[/]. {e(note.message)}")
        out.print(f"  [bold]Next step:[/] {e(note.fix)}")

    probes = Table(title="Probes (in order)", title_justify="left")
    probes.add_column("probe")
    probes.add_column("ok")
    probes.add_column("detail")
    for probe in facts.probes:
        probes.add_row(e(probe.name), "[green]yes[/]" if probe.ok else "[red]no[/]", e(probe.detail))
    out.print(probes)


# --------------------------------------------------------------------------- progress


class RichSteps(Steps):
    """Each long step as a spinner with its elapsed time (and the tool's last line), then a
    line with its duration. Off a terminal only the closing lines are printed."""

    def __init__(self, out: Console | None = None) -> None:
        self.console = out or console()

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[Callable[[str], None]]:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        started = time.perf_counter()
        if not self.console.is_terminal:  # CI, a log file: the closing line is enough
            ok = False
            try:
                yield lambda _line: None
                ok = True
            finally:
                self._done(title, started, ok)
            return
        progress = Progress(SpinnerColumn(), TextColumn("{task.description}", markup=False), TimeElapsedColumn(),
                            TextColumn("[dim]{task.fields[line]}"), console=self.console, transient=True)
        task = progress.add_task(title, line="")

        def update(line: str) -> None:
            if line.strip():
                progress.update(task, line=escape(line.strip()[:70]))

        ok = False
        try:
            with progress:
                yield update
            ok = True
        finally:
            self._done(title, started, ok)

    def _done(self, title: str, started: float, ok: bool) -> None:
        mark = "[green]✓[/]" if ok else "[red]✗[/]"
        self.console.print(f"{mark} {e(title)} [dim]({time.perf_counter() - started:.1f} s)[/]")

    def note(self, text: str) -> None:
        self.console.print(e(text))


# --------------------------------------------------------------------------- certificate


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
        table.add_row(str(check.level), escape(check.name), f"[{STYLE[check.status]}]{check.status}[/]",
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
        if finding.known_issue and finding.note:
            out.print(f"  [bold]{escape(finding.note)}[/]")
    for finding in findings:
        if finding.severity != PROBLEM:
            out.print(f"[cyan]Note:[/] {escape(finding.title)}: {escape(finding.note or finding.cause)}")


def show_certificate(cert: Certificate, out: Console, path: Path | None) -> None:
    where = f"{cert.prefix}" + (f" (env {cert.env})" if cert.env else "")
    out.print(f"[bold]Certification of {escape(where)}, level {cert.level}[/]")
    out.print(checks_table(cert.checks))
    if cert.status == CERTIFIED:
        version = cert.tensorflow.get("version")
        out.print("Status: [bold green]certified[/]: " + (f"TensorFlow {version} trains" if version else "ready")
                  + f" on {len(cert.gpus) or 'the'} GPU(s) (level {cert.level}).")
    elif cert.status == CPU_ONLY:
        tail = "" if cert.allow_cpu else " Exit 3: pass --allow-cpu to accept it."
        out.print(f"Status: [bold yellow]cpu-only[/]: no GPU took part; the checks ran on the CPU.{tail}")
    else:
        failed = [c.name for c in cert.checks if c.status == FAIL]
        out.print(f"Status: [bold red]failed[/]: {len(failed)} check(s) failed: {escape(', '.join(failed))}.")
    t = cert.throughput
    if t and (t.gpu_images_per_second or t.cpu_images_per_second):
        out.print("Throughput: " + escape(_throughput_text(t.gpu_images_per_second, t.cpu_images_per_second, t.ratio)))
    show_findings(cert.diagnosis, out)
    if path is not None:
        out.print(escape(f"Certificate: {path}" + (f"; TensorFlow log: {cert.log}" if cert.log else "")))


# --------------------------------------------------------------------------- setup


def show_setup(outcome: Outcome, out: Console | None = None) -> None:
    out = out or console()
    plan = outcome.plan
    if outcome.noop:
        out.print(f"[bold green]Nothing to do:[/] {e(plan.env)} at {e(outcome.prefix)} is installed from lock "
                  f"{e((outcome.lock_sha256 or '')[:12])} and {_cert_words(outcome.certificate)} "
                  f"(checked in {outcome.seconds.get('total', 0):.2f} s: {e(outcome.noop_reason)}).")
        _closing(outcome, out)
        return
    table = Table(title="gpuready setup", title_justify="left", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    device = f"GPU, CUDA {plan.cuda}, cuDNN {plan.cudnn}" if plan.device == "gpu" else "CPU"
    table.add_row("environment", e(f"{plan.env}: {plan.distribution} {plan.tensorflow} ({device}), "
                                   f"Python {plan.python}, {plan.flavor} flavor"))
    table.add_row("prefix", e(outcome.prefix))
    table.add_row("lock", e(f"{outcome.lock_note}; sha256 {(outcome.lock_sha256 or '')[:16]}…"))
    if outcome.installed:
        result = outcome.installed
        table.add_row("install", e(f"{outcome.install_note}: {len(result.packages)} packages with "
                                   f"{result.installer.split(' (')[0]}"))
        if result.activation.reasons:
            table.add_row("activation", e("\n".join(result.activation.reasons)))
    else:
        table.add_row("install", e(outcome.install_note))
    table.add_row("certificate", f"{_cert_words(outcome.certificate)}"
                                 + (f" — {e(outcome.certificate_note)}" if outcome.certificate_note else ""))
    s = outcome.seconds
    work = outcome.installed.seconds if outcome.installed else {}
    phases = [("detect+plan", s.get("plan")), ("lock", s.get("lock")), ("install", s.get("install")),
              ("of which downloading and installing", work.get("packages")),
              ("removing the old environment", work.get("remove_old")), ("certify", s.get("certify"))]
    text = ", ".join(f"{name} {value:.1f} s" for name, value in phases if value is not None)
    text += f"; total {s.get('total', 0):.1f} s, of which gpuready itself {outcome.overhead:.2f} s"
    table.add_row("time", text)
    out.print(table)
    for warning in plan.warnings:
        out.print(f"[yellow]warning[/] {e(warning.code)}: {e(warning.message)}")
    _closing(outcome, out)


def _closing(outcome: Outcome, out: Any) -> None:
    if outcome.exit_code == EXIT_CPU_ONLY:
        out.print("[yellow]TensorFlow ran on the CPU only[/]: pass --allow-cpu to accept that (exit 3).")
    elif outcome.exit_code == EXIT_FAILED:
        out.print(f"[red]The environment is installed but not proven[/]: see `invoke doctor --prefix "
                  f"{e(outcome.prefix)}` and {e(outcome.prefix)}/gpuready/certificate.json (exit 1).")
    out.print(f"Activate it with:  [bold]{e(outcome.activation_line)}[/]")


def _cert_words(status: str | None) -> str:
    return {
        "certified": "certified on the GPU",
        "cpu-only": "certified on the CPU only",
        "failed": "[red]certification failed[/]",
        NOT_CERTIFIED: "not certified here (what-if plan)",
    }.get(status or "", e(status))
