"""`invoke setup`: detect, plan, lock, install, certify, in one command a newcomer can trust.

The pipeline reuses each step's library: the plan (`tasks.plan.plan_for_flags`), the committed
lock when envs/ has one that matches the plan (else `locking.lock_plan`), `install.install`,
and `certify.certify`. What it did is kept in a state record, ``<prefix>/gpuready/state.json``:
the plan's hash, the lock's sha256, the driver, the environment and the certificate's status. A
second run on the same host with nothing changed finds the same plan, the same lock, the same
driver, the environment intact (its packages equal its lock: dist-info folders are read, no
Python is started) and the certificate still valid, does nothing and says so. That check
imports neither TensorFlow nor uv, and takes well under a second.

A plan for a what-if host (--driver, --gpu, --platform or --wsl) is installed but not certified
here: it cannot be proven on a host that is not the one it was planned for.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from . import activation, install
from .envfolder import write_atomic
from .errors import EXIT_CPU_ONLY, EXIT_FAILED, EXIT_OK, UsageError
from .prefix import certificate_path, meta_dir, read_install_record

STATE = "state.json"
STATE_SCHEMA = 1
WHAT_IF_FACTS = ("driver", "gpus", "platform", "wsl")  # overrides that make the host hypothetical
LEVELS = (0, 1, 2, 3)
# Certificate status when gpuready did not run the check.
SKIPPED, MISSING = "skipped", "missing"


# --------------------------------------------------------------------------- progress


class RichSteps(install.Steps):
    """Each long step as a spinner with its elapsed time (and the tool's last line), then a
    line with its duration. Off a terminal only the closing lines are printed."""

    def __init__(self, console: Any = None) -> None:
        from .render import console as make_console

        self.console = console or make_console()

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
        progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                            TextColumn("[dim]{task.fields[line]}"), console=self.console, transient=True)
        task = progress.add_task(title, line="")

        def update(line: str) -> None:
            if line.strip():
                progress.update(task, line=line.strip()[:70])

        ok = False
        try:
            with progress:
                yield update
            ok = True
        finally:
            self._done(title, started, ok)

    def _done(self, title: str, started: float, ok: bool) -> None:
        mark = "[green]✓[/]" if ok else "[red]✗[/]"
        self.console.print(f"{mark} {title} [dim]({time.perf_counter() - started:.1f} s)[/]")

    def note(self, text: str) -> None:
        self.console.print(text)


# --------------------------------------------------------------------------- state


def plan_hash(plan: Any) -> str:
    """sha256 of what the plan decided and the facts it decided from (probe details left out)."""
    data = plan.to_dict()
    host = dict(data.get("host") or {})
    for volatile in ("probes", "container", "conda"):
        host.pop(volatile, None)
    data["host"] = host
    material = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(material.encode()).hexdigest()


def state_path(prefix: str | os.PathLike[str]) -> Path:
    return meta_dir(prefix) / STATE


def read_state(prefix: str | os.PathLike[str]) -> dict[str, Any] | None:
    try:
        data = json.loads(state_path(prefix).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("schema") == STATE_SCHEMA else None


def write_state(prefix: str | os.PathLike[str], data: Mapping[str, Any]) -> None:
    path = state_path(prefix)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (json.dumps({"schema": STATE_SCHEMA, **data}, indent=2) + "\n").encode("utf-8"))


def what_if(plan: Any) -> list[str]:
    return [f for f in plan.host.overridden if f in WHAT_IF_FACTS]


# --------------------------------------------------------------------------- certification


def certify_module() -> Any | None:
    """gpuready.certify, or None while it is not part of this gpuready."""
    try:
        from . import certify
    except ImportError:
        return None
    return certify if hasattr(certify, "certify") else None


def certificate_status(prefix: Path) -> str | None:
    try:
        return json.loads(certificate_path(prefix).read_text(encoding="utf-8")).get("status")
    except (OSError, ValueError, AttributeError):
        return None


def certificate_valid(prefix: Path, host: Any, state: Mapping[str, Any], level: int) -> tuple[bool, str]:
    """Is the certificate the state record names still good for this host (no TensorFlow import)?"""
    status = state.get("certificate")
    if status == SKIPPED:
        return True, "not certified here (a what-if plan)"
    if status == MISSING:
        return (certify_module() is None,
                "certification was missing when it was installed; it is available now")
    if status not in ("certified", "cpu-only"):
        return False, f"the last certification {'failed' if status == 'failed' else 'did not run'}"
    if int(state.get("level", -1)) < level:
        return False, f"certified at level {state.get('level')}, level {level} asked"
    if certificate_status(prefix) != status:
        return False, "the certificate changed or is missing"
    module = certify_module()
    if module is not None and hasattr(module, "verify"):
        result = module.verify(prefix, host)
        if not result.ok:
            return False, "the certificate no longer holds: " + "; ".join(result.reasons)
    return True, status


def exit_code_for(status: str | None, allow_cpu: bool) -> int:
    if status == "cpu-only":
        return EXIT_OK if allow_cpu else EXIT_CPU_ONLY
    if status == "failed":
        return EXIT_FAILED
    return EXIT_OK


# --------------------------------------------------------------------------- the pipeline


@dataclass
class Outcome:
    plan: Any
    prefix: Path
    flavor: str
    noop: bool = False
    noop_reason: str = ""
    lock_note: str = ""
    lock_sha256: str | None = None
    installed: install.InstallResult | None = None
    install_note: str = ""
    certificate: str | None = None  # certified | cpu-only | failed | skipped | missing
    certificate_note: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    exit_code: int = EXIT_OK

    @property
    def overhead(self) -> float:
        """gpuready's own time: everything but uv/pip/conda-lock's work and the check itself."""
        work = self.installed.work_seconds if self.installed else 0.0
        waited = self.seconds.get("prompt", 0.0)
        return max(0.0, self.seconds.get("total", 0.0) - work - waited - self.seconds.get("certify", 0.0))

    @property
    def activation_line(self) -> str:
        return activation.activation_line(self.prefix, self.flavor)


def _confirm(question: str) -> bool:
    from rich.prompt import Confirm

    return Confirm.ask(question, default=False)


def run(c: Any, *, plan_flags: Mapping[str, Any], prefix: str | None = None, level: int = 2,
        allow_cpu: bool = False, force: bool = False, yes: bool = False,
        steps: install.Steps | None = None, confirm: Callable[[str], bool] | None = None,
        interactive: bool | None = None) -> Outcome:
    """Run the pipeline; return what happened (the caller prints it and exits with its code)."""
    from .config import settings as settings_of
    from .envfolder import find_env
    from .tasks.plan import plan_for_flags

    started = time.perf_counter()
    steps = steps or install.Steps()
    if level not in LEVELS:
        raise UsageError(f"--level: {level!r} is not one of 0, 1, 2, 3")
    conf = settings_of(c.config)
    seconds: dict[str, float] = {}

    t = time.perf_counter()
    plan = plan_for_flags(c, **plan_flags)
    seconds["plan"] = time.perf_counter() - t
    hypothetical = what_if(plan)
    if "platform" in plan.host.overridden:
        from .detect import host_platform

        if plan.platform != host_platform():
            raise UsageError(f"the plan is for {plan.platform} and this host is {host_platform()}: an "
                             "environment installs only on its own platform (`invoke lock` with the same "
                             "flags makes its lock for that host)")
    where = install.resolve_prefix(plan.env, prefix, conf)
    outcome = Outcome(plan=plan, prefix=where, flavor=plan.flavor, seconds=seconds)

    t = time.perf_counter()
    folder = find_env(conf["envs_dir"], plan)
    current = folder is not None and folder.is_current()[0]
    lock_sha = folder.lock_sha256() if current else None
    digest = plan_hash(plan)
    driver = plan.host.driver.version

    if not force and current:
        state = read_state(where)
        reason = _noop_reason(state, digest, lock_sha, driver, where, plan, level)
        if reason is None:
            assert state is not None
            outcome.noop = True
            outcome.lock_sha256 = lock_sha
            outcome.certificate = state.get("certificate")
            outcome.noop_reason = "same plan, same lock, same driver, environment intact" + (
                ", certificate valid" if outcome.certificate in ("certified", "cpu-only") else "")
            seconds["check"] = time.perf_counter() - t
            seconds["total"] = time.perf_counter() - started
            outcome.exit_code = exit_code_for(outcome.certificate, allow_cpu)
            return outcome
        if state is not None:
            steps.note(f"Setting up again: {reason}.")
    seconds["check"] = time.perf_counter() - t

    # lock
    t = time.perf_counter()
    if current:
        outcome.lock_note = f"reused envs/{folder.name}/{folder.lock_file.name} (current)"
    else:
        from . import locking

        with steps.step(f"Locking envs/{plan.env} ({plan.flavor} flavor)") as update:
            folder = locking.lock_plan(plan, conf["envs_dir"], conf, update)
        outcome.lock_note = f"locked into envs/{folder.name}/{folder.lock_file.name}"
    lock_sha = folder.lock_sha256()
    outcome.lock_sha256 = lock_sha
    seconds["lock"] = time.perf_counter() - t

    # install
    t = time.perf_counter()
    intact, why = install.environment_intact(where, lock_sha)
    if intact and not force:
        outcome.install_note = "already installed from this lock (environment intact)"
    else:
        record = read_install_record(where)
        if record is not None and not yes:
            question = (f"Replace the environment at {where} (env {record.get('env')}, lock "
                        f"{str(record.get('lock_sha256'))[:12]}) with {plan.env} (lock {lock_sha[:12]})?")
            is_tty = sys.stdin.isatty() if interactive is None else interactive
            if not is_tty:
                raise UsageError(f"an environment exists at {where} ({why}); pass --yes to replace it. "
                                 "Nothing was changed")
            asked = time.perf_counter()
            if not (confirm or _confirm)(question):
                raise UsageError("not replaced: the environment is as it was")
            seconds["prompt"] = time.perf_counter() - asked
        warnings = [w.code for w in plan.warnings]
        outcome.installed = install.install(folder, where, settings=conf, warnings=warnings,
                                            plan=plan.to_dict(), steps=steps)
        outcome.install_note = ("replaced the previous environment" if outcome.installed.replaced
                                else "installed")
    seconds["install"] = time.perf_counter() - t - seconds.get("prompt", 0.0)

    # certify
    t = time.perf_counter()
    module = certify_module()
    if hypothetical:
        outcome.certificate = SKIPPED
        outcome.certificate_note = (f"not certified: the plan is for a what-if host ({', '.join(hypothetical)} "
                                    f"overridden); run `invoke certify --prefix {where}` on that host")
    elif module is None:
        outcome.certificate = MISSING
        outcome.certificate_note = "certification is missing from this gpuready: the environment is not proven"
    else:
        with steps.step(f"Certifying (level {level})") as update:
            def on_event(kind: str, data: Any) -> None:
                update(f"level {data}" if kind == "level" else str(getattr(data, "name", data)))

            certificate = module.certify(where, level=level, allow_cpu=allow_cpu, host=plan.host,
                                         timeout=_certify_timeout(conf), on_event=on_event)
        outcome.certificate = certificate.status
        outcome.certificate_note = f"certificate: {certificate_path(where)}"
    seconds["certify"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - started

    write_state(where, {
        "env": plan.env, "prefix": str(where), "flavor": plan.flavor, "plan_hash": digest,
        "lock_sha256": lock_sha, "driver": driver, "gpus": [g.uuid or g.compute_capability for g in plan.host.gpus],
        "what_if": hypothetical, "certificate": outcome.certificate, "level": level,
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "install_seconds": ({k: round(v, 3) for k, v in outcome.installed.seconds.items()}
                            if outcome.installed else None),
    })
    outcome.exit_code = exit_code_for(outcome.certificate, allow_cpu)
    return outcome


def _certify_timeout(conf: Mapping[str, Any]) -> float | None:
    value = conf.get("certify_timeout")
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UsageError(f"gpuready.certify_timeout = {value!r} is not a number of seconds") from None


def _noop_reason(state: Mapping[str, Any] | None, digest: str, lock_sha: str | None, driver: str | None,
                 prefix: Path, plan: Any, level: int) -> str | None:
    """Why setup has work to do, or None when it has none."""
    if state is None:
        return "no state record"
    if state.get("plan_hash") != digest:
        return "the plan changed"
    if state.get("lock_sha256") != lock_sha:
        return "the lock changed"
    if state.get("driver") != driver:
        return "the driver changed"
    intact, why = install.environment_intact(prefix, lock_sha)
    if not intact:
        return f"the environment is not intact: {why}"
    valid, why = certificate_valid(prefix, plan.host, state, level)
    if not valid:
        return why
    return None


# --------------------------------------------------------------------------- summary


def show(outcome: Outcome, console: Any = None) -> None:
    from rich.table import Table

    from .render import console as make_console

    out = console or make_console()
    plan = outcome.plan
    if outcome.noop:
        out.print(f"[bold green]Nothing to do:[/] {plan.env} at {outcome.prefix} is installed from lock "
                  f"{(outcome.lock_sha256 or '')[:12]} and {_cert_words(outcome.certificate)} "
                  f"(checked in {outcome.seconds.get('total', 0):.2f} s: {outcome.noop_reason}).")
        _closing(outcome, out)
        return
    table = Table(title="gpuready setup", title_justify="left", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    device = f"GPU, CUDA {plan.cuda}, cuDNN {plan.cudnn}" if plan.device == "gpu" else "CPU"
    table.add_row("environment", f"{plan.env}: {plan.distribution} {plan.tensorflow} ({device}), "
                                 f"Python {plan.python}, {plan.flavor} flavor")
    table.add_row("prefix", str(outcome.prefix))
    table.add_row("lock", f"{outcome.lock_note}; sha256 {(outcome.lock_sha256 or '')[:16]}…")
    if outcome.installed:
        result = outcome.installed
        table.add_row("install", f"{outcome.install_note}: {len(result.packages)} packages with "
                                 f"{result.installer.split(' (')[0]}")
        if result.activation.reasons:
            table.add_row("activation", "\n".join(result.activation.reasons))
    else:
        table.add_row("install", outcome.install_note)
    table.add_row("certificate", f"{_cert_words(outcome.certificate)}"
                                 + (f" — {outcome.certificate_note}" if outcome.certificate_note else ""))
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
        out.print(f"[yellow]warning[/] {warning.code}: {warning.message}")
    _closing(outcome, out)


def _closing(outcome: Outcome, out: Any) -> None:
    if outcome.exit_code == EXIT_CPU_ONLY:
        out.print("[yellow]TensorFlow ran on the CPU only[/]: pass --allow-cpu to accept that (exit 3).")
    elif outcome.exit_code == EXIT_FAILED:
        out.print(f"[red]The environment is installed but not proven[/]: see `invoke doctor --prefix "
                  f"{outcome.prefix}` and {outcome.prefix}/gpuready/certificate.json (exit 1).")
    out.print(f"Activate it with:  [bold]{outcome.activation_line}[/]")


def _cert_words(status: str | None) -> str:
    return {
        "certified": "certified on the GPU",
        "cpu-only": "certified on the CPU only",
        "failed": "[red]certification failed[/]",
        SKIPPED: "not certified here (what-if plan)",
        MISSING: "[yellow]certification is missing[/]",
    }.get(status or "", str(status))
