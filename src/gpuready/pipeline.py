"""`setup` as a library: detect → plan → lock → install → certify, with nothing changed doing nothing.

The caller gives the settings, the plan (made by `model.planner.make_plan` for this host or a
what-if one) and callbacks: `steps` for progress, `confirm` for the one question setup asks
(replacing an existing environment). No Invoke and no rich here; the command line renders the
`Outcome`.

What setup did is kept in `<prefix>/gpuready/state.json` (`SetupState`): the plan's hash, the
lock's sha256, the driver and the digest of the certificate it wrote. A second run with the same
plan, the same lock and the same driver, the environment intact (its packages equal its lock:
dist-info folders are read, no Python is started) and the certificate still valid does nothing
and says so; that check imports neither TensorFlow nor uv.

A committed lock is never relocked behind the user's back: setup locks when there is no folder
for the plan or its inputs changed, and refuses (exit 2) a folder whose lock files no longer
match lock-state.toml or fail the content check (`EnvFolder.check`).

A plan for a what-if host (--driver, --gpu, --platform or --wsl) is installed but not certified
here: it cannot be proven on a host that is not the one it was planned for.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from .config import Settings
from .env import install as install_mod
from .env.activation import activation_line
from .env.inventory import environment_intact
from .env.layout import certificate_path, read_install_record, read_state, resolve_prefix, write_state
from .env.transaction import Layout, prefix_lock, sweep_stale
from .errors import EXIT_OK, UsageError
from .files import check_prefix_writable, sha256_file
from .lock.folder import find_env
from .model.certificate import CERTIFIED, CPU_ONLY, NOT_CERTIFIED, exit_code
from .model.flags import LEVELS
from .model.plan import Plan
from .model.records import RecordError, SetupState
from .progress import Steps

WHAT_IF_FACTS = ("driver", "gpus", "platform", "wsl")  # overrides that make the host hypothetical


def plan_hash(plan: Plan) -> str:
    """sha256 of what the plan decided and the facts it decided from (probe details left out)."""
    data = plan.to_dict()
    host = dict(data.get("host") or {})
    for volatile in ("probes", "container", "conda"):
        host.pop(volatile, None)
    data["host"] = host
    material = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(material.encode()).hexdigest()


def what_if(plan: Plan) -> list[str]:
    return [f for f in plan.host.overridden if f in WHAT_IF_FACTS]


def certificate_valid(prefix: Path, plan: Plan, state: SetupState, level: int) -> tuple[bool, str]:
    """Is the certificate in the prefix still good for this host (no TensorFlow import)?

    (True, its status) or (False, why not). What state.json says of the certificate is not
    believed: the certificate itself is read, must be the one whose digest setup recorded, and
    must verify — its status and level following from its own checks. A what-if plan is never
    certified here, whatever the state says."""
    from .certify.service import verify

    if what_if(plan):
        return True, NOT_CERTIFIED
    if not state.certificate_sha256:
        return False, "setup recorded no certificate for this environment"
    path = certificate_path(prefix)
    try:
        digest = sha256_file(path)
    except OSError:
        return False, "the certificate is missing"
    if digest != state.certificate_sha256:
        return False, "the certificate changed since it was written"
    result = verify(prefix, plan.host)
    if not result.ok:
        return False, "the certificate does not hold: " + "; ".join(result.reasons)
    assert result.certificate is not None
    if result.certificate.level < level:
        return False, f"certified at level {result.certificate.level}, level {level} asked"
    return True, result.certificate.status


@dataclass
class Outcome:
    plan: Plan
    prefix: Path
    flavor: str
    noop: bool = False
    noop_reason: str = ""
    lock_note: str = ""
    lock_sha256: str | None = None
    installed: install_mod.InstallResult | None = None
    install_note: str = ""
    certificate: str | None = None  # certified | cpu-only | failed | skipped
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
        return activation_line(self.prefix, self.flavor)


def run(settings: Settings, plan: Plan, *, prefix: str | None = None, level: int = 2,
        allow_cpu: bool = False, force: bool = False, yes: bool = False,
        steps: Steps | None = None, confirm: Callable[[str], bool] | None = None,
        interactive: bool = False, certify_timeout: float | None = None,
        plan_seconds: float = 0.0, bundle: Path | None = None) -> Outcome:
    """Run the pipeline for `plan`; return what happened (the caller prints it and exits with its code).

    confirm(question) is asked before an existing environment is replaced, when `interactive`
    and not `yes`; without a terminal and without --yes setup stops (exit 2) instead.

    With `bundle` (a folder `bundle.check_bundle` accepted), the lock is the bundle's and the
    packages come from its wheels/ alone: nothing is locked and nothing is fetched.
    """
    from .detect.host import host_platform

    started = time.perf_counter() - plan_seconds
    steps = steps or Steps()
    if level not in LEVELS:
        raise UsageError(f"--level: {level!r} is not one of 0, 1, 2, 3")
    seconds: dict[str, float] = {"plan": plan_seconds}
    hypothetical = what_if(plan)
    if "platform" in plan.host.overridden and plan.platform != host_platform():
        raise UsageError(f"the plan is for {plan.platform} and this host is {host_platform()}: an "
                         "environment installs only on its own platform (`invoke lock` with the same "
                         "flags makes its lock for that host)")
    if bundle is not None:
        settings = settings.model_copy(update={"envs_dir": str(bundle / "env"),
                                               "wheels_dir": str(bundle / "wheels")})
    where = resolve_prefix(plan.env, prefix, settings)
    outcome = Outcome(plan=plan, prefix=where, flavor=plan.flavor, seconds=seconds)
    for removed in sweep_stale(Layout(where)):
        steps.note(f"Removed {removed.name}, left beside {where} by an install that was killed.")

    t = time.perf_counter()
    folder = find_env(settings.envs_dir, plan)
    check = folder.check() if folder is not None else None
    if check is not None and not check.ok and not check.relock_ok and bundle is None:
        assert folder is not None
        file = check.file or "lock-state.toml"
        what = check.reason if check.reason.startswith(file) else f"{file}: {check.reason}"
        raise UsageError(
            f"envs/{folder.name}/{what}. setup does not relock a "
            f"lock whose files were changed or fail the lock check: look at the change (git diff envs/"
            f"{folder.name}), then relock deliberately with `invoke lock --env {folder.name}`. Nothing was "
            "locked or installed")
    current = check is not None and check.ok
    lock_sha = folder.lock_sha256() if folder is not None and current else None
    digest = plan_hash(plan)
    driver = plan.host.driver.version

    if not force and current:
        state = read_state(where)
        reason, status = _noop_reason(state, digest, lock_sha, driver, where, plan, level)
        if reason is None:
            outcome.noop = True
            outcome.lock_sha256 = lock_sha
            outcome.certificate = status
            outcome.noop_reason = "same plan, same lock, same driver, environment intact" + (
                ", certificate valid" if outcome.certificate in (CERTIFIED, CPU_ONLY) else "")
            seconds["check"] = time.perf_counter() - t
            seconds["total"] = time.perf_counter() - started
            outcome.exit_code = exit_code(outcome.certificate, allow_cpu)
            return outcome
        if state is not None:
            steps.note(f"Setting up again: {reason}.")
    seconds["check"] = time.perf_counter() - t

    check_prefix_writable(where)  # before locking or downloading anything
    # lock
    t = time.perf_counter()
    if folder is not None and current and bundle is not None:
        outcome.lock_note = f"the bundle's env/{folder.name}/{folder.lock_file.name}"
    elif folder is not None and current:
        outcome.lock_note = f"reused envs/{folder.name}/{folder.lock_file.name} (current)"
    elif bundle is not None:
        raise UsageError(f"the bundle {bundle} holds no current lock for this host's plan {plan.env}; "
                         "make the bundle with this host's plan flags (invoke bundle ...). Nothing was "
                         "installed")
    else:
        from .lock import lock_plan

        with steps.step(f"Locking envs/{plan.env} ({plan.flavor} flavor)") as update:
            folder = lock_plan(plan, settings.envs_dir, settings, update)
        outcome.lock_note = f"locked into envs/{folder.name}/{folder.lock_file.name}"
    lock_sha = folder.lock_sha256()
    outcome.lock_sha256 = lock_sha
    seconds["lock"] = time.perf_counter() - t

    # install
    t = time.perf_counter()
    intact, why = environment_intact(where, lock_sha)
    if intact and not force:
        outcome.install_note = "already installed from this lock (environment intact)"
    else:
        try:
            record = read_install_record(where)
        except RecordError:
            record = None
        if record is not None and not yes:
            question = (f"Replace the environment at {where} (env {record.env}, lock "
                        f"{record.lock_sha256[:12]}) with {plan.env} (lock {lock_sha[:12]})?")
            if not interactive or confirm is None:
                raise UsageError(f"an environment exists at {where} ({why}); pass --yes to replace it. "
                                 "Nothing was changed")
            asked = time.perf_counter()
            if not confirm(question):
                raise UsageError("not replaced: the environment is as it was")
            seconds["prompt"] = time.perf_counter() - asked
        outcome.installed = install_mod.install(folder, where, settings=settings,
                                                warnings=[w.code for w in plan.warnings], plan=plan, steps=steps)
        outcome.install_note = ("replaced the previous environment" if outcome.installed.replaced
                                else "installed")
    seconds["install"] = time.perf_counter() - t - seconds.get("prompt", 0.0)

    # certify
    t = time.perf_counter()
    certificate_sha = None
    if hypothetical:
        outcome.certificate = NOT_CERTIFIED
        outcome.certificate_note = (f"not certified: the plan is for a what-if host ({', '.join(hypothetical)} "
                                    f"overridden); run `invoke certify --prefix {where}` on that host")
    else:
        from .certify.service import certify
        from .model.matrix import load as load_matrix

        with prefix_lock(Layout(where), shared=True), steps.step(f"Certifying (level {level})") as update:
            def on_event(kind: str, data: Any) -> None:
                update(f"level {data}" if kind == "level" else str(getattr(data, "name", data)))

            certificate = certify(where, level=level, allow_cpu=allow_cpu, host=plan.host,
                                  timeout=certify_timeout, on_event=on_event,
                                  matrix=load_matrix(settings.matrix_dir))
        outcome.certificate = certificate.status
        outcome.certificate_note = f"certificate: {certificate_path(where)}"
        certificate_sha = sha256_file(certificate_path(where))
    seconds["certify"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - started

    write_state(where, SetupState(
        env=plan.env, prefix=str(where), flavor=plan.flavor, plan_hash=digest, lock_sha256=lock_sha,
        driver=driver, gpus=tuple(g.uuid or g.compute_capability for g in plan.host.gpus),
        what_if=tuple(hypothetical), certificate=outcome.certificate, certificate_sha256=certificate_sha,
        at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        seconds={k: round(v, 3) for k, v in seconds.items()},
        install_seconds=({k: round(v, 3) for k, v in outcome.installed.seconds.items()}
                         if outcome.installed else None),
    ))
    outcome.exit_code = exit_code(outcome.certificate, allow_cpu)
    return outcome


def _noop_reason(state: SetupState | None, digest: str, lock_sha: str | None, driver: str | None,
                 prefix: Path, plan: Plan, level: int) -> tuple[str | None, str]:
    """(why setup has work to do, "") or (None, the verified certificate's status)."""
    if state is None:
        return "no state record", ""
    if state.plan_hash != digest:
        return "the plan changed", ""
    if state.lock_sha256 != lock_sha:
        return "the lock changed", ""
    if state.driver != driver:
        return "the driver changed", ""
    intact, why = environment_intact(prefix, lock_sha)
    if not intact:
        return f"the environment is not intact: {why}", ""
    valid, why = certificate_valid(prefix, plan, state, level)
    if not valid:
        return why, ""
    return None, why
