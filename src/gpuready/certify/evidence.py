"""Does a certificate follow from its own evidence? The checks `--verify` believes nothing else.

A certificate is a JSON file anyone who can write the prefix can edit. Its status, level and
throughput are claims; its checks and their recorded measurements are the evidence. Here each
claim is derived again from the evidence with the same rules that made it — the check script's
own thresholds and pure functions (`gpuready.check.conv2d_check`), level 0's own functions, the
status rule of `model.certificate` — and every disagreement is named. A check flipped to pass
while its measurements say fail, a level higher than the recorded checks support, a GPU
throughput figure without the GPU check passing: each is one line of `inconsistencies`.

Pure: no I/O; the file checks of level 0 are redone by `service.verify`, not here.
"""

from __future__ import annotations

from typing import Any, Callable

from ..check import conv2d_check as script
from ..model.certificate import (CERTIFIED, FAIL, LEVEL_CHECKS, NO_GPU, PASS, PROCESS_FAILURES, SKIP, WARN,
                                 Certificate, Check, decide_status, gpus_at_work)
from ..model.flags import LEVELS
from .level0 import NOT_BUILT, check_driver, check_gpus
from .runner import expectations

CHECK_LEVEL = {name: level for level, names in LEVEL_CHECKS.items() for name in names}
GPU_ONLY = ("memory-growth", "gpu-ops", "placement")  # skipped (NO_GPU) exactly when TensorFlow lists none
TRAINED = {"train": "training", "xla": "XLA", "mixed-precision": "mixed_float16", "multi-gpu": "MirroredStrategy"}
SUCCEEDED = (PASS, WARN)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _training_problems(details: dict[str, Any], what: str) -> list[str]:
    """The check script's bar (`Conv2DCheck.judge`) applied to the recorded figures."""
    initial, final, accuracy = (_number(details.get(k)) for k in ("initial_loss", "final_loss", "accuracy"))
    if initial is None or final is None or accuracy is None:
        return [f"{what}: the losses and the accuracy are not recorded"]
    problems = []
    if not final < initial * script.LOSS_FALL:
        problems.append(f"{what}: the loss did not fall enough ({initial:.4g} -> {final:.4g})")
    if not accuracy >= script.ACCURACY_BAR:
        problems.append(f"{what}: accuracy {accuracy:.3f} is below the bar {script.ACCURACY_BAR:.2f}")
    return problems


class _Judge:
    """The status each check's recorded measurements give, check by check."""

    def __init__(self, cert: Certificate) -> None:
        self.cert = cert
        self.gpus = list(cert.gpus)
        self.expect = expectations(cert.inputs, cert.host) if cert.host is not None else {"gpus": None}
        self.by_name = {c.name: c for c in cert.checks}

    def succeeded(self, name: str) -> bool:
        check = self.by_name.get(name)
        return check is not None and check.status in SUCCEEDED

    def problems(self, check: Check) -> list[str]:
        """Why `check`'s recorded status does not follow from what it recorded (empty: it does)."""
        if check.name in PROCESS_FAILURES:
            return [] if check.status == FAIL else [f"{check.name} is only ever recorded as a failure"]
        if check.status == FAIL:
            return []  # a failure claims nothing: it can only lower the status
        if check.status == SKIP:
            return self._skip_problems(check)
        judge = getattr(self, "_" + check.name.replace("-", "_"), None)
        return judge(check) if judge is not None else []

    # ------------------------------------------------------------------ skips

    def _skip_problems(self, check: Check) -> list[str]:
        reason = check.reason or ""
        if reason.startswith("needs '"):
            needed = reason.split("'")[1]
            return [] if not self.succeeded(needed) else [f"{check.name} is skipped for want of {needed}, which passed"]
        if check.level == 0:
            if reason == NOT_BUILT and self.cert.inputs is None:
                return []
            if check.name in ("driver-meets-plan", "gpus-meet-plan") and self.cert.plan is None and self.cert.inputs:
                return []
            return [f"{check.name} is skipped although the certificate records what it checks"]
        allowed: dict[str, Callable[[], tuple[bool, Any]]] = {
            "mixed-precision": lambda: script.mixed_precision_decision(self.gpus),
            "multi-gpu": lambda: script.multi_gpu_decision(self.gpus),
            "throughput": lambda: (bool(self.gpus), NO_GPU),
            **{name: (lambda: (bool(self.gpus), NO_GPU)) for name in GPU_ONLY},
        }
        if check.name == "gpus-visible":
            return self._gpus_visible(check)
        if check.name in allowed:
            runs, _ = allowed[check.name]()
            return [f"{check.name} is skipped although the recorded GPUs ({len(self.gpus)}) call for it"] if runs else []
        return [f"{check.name} is recorded as skipped; it never is"]

    # ------------------------------------------------------------------ level 0

    def _python(self, check: Check) -> list[str]:
        return [] if check.details.get("version") else ["python passed without the interpreter's version recorded"]

    def _files_match_record(self, check: Check) -> list[str]:
        d = check.details
        problems = []
        if d.get("mismatches") or d.get("modified") or d.get("missing") or d.get("unreadable"):
            problems.append(f"files-match-record is {check.status} but records {d.get('mismatches')} file(s) that differ")
        if check.status == PASS and d.get("without_record"):
            problems.append("files-match-record passed although distributions without RECORD are recorded")
        if self.cert.files_checked is not None and d.get("files") != self.cert.files_checked:
            problems.append(f"the certificate says {self.cert.files_checked} files were checked; "
                            f"files-match-record records {d.get('files')}")
        return problems

    def _packages_match_lock(self, check: Check) -> list[str]:
        d = check.details
        problems = []
        if d.get("missing") or d.get("different"):
            problems.append(f"packages-match-lock is {check.status} but records packages missing or at another "
                            f"version: {', '.join(map(str, (d.get('different') or []) + (d.get('missing') or [])))}")
        if check.status == PASS and d.get("extra"):
            problems.append("packages-match-lock passed although it records packages the lock does not list")
        if d.get("installed") != len(self.cert.packages):
            problems.append(f"packages-match-lock counted {d.get('installed')} installed packages; the certificate "
                            f"lists {len(self.cert.packages)}")
        return problems

    def _lock_hash(self, check: Check) -> list[str]:
        have = check.details.get("sha256")
        if have != self.cert.lock_sha256:
            return [f"lock-hash passed with sha256 {str(have)[:12]}..., not the certificate's lock "
                    f"{str(self.cert.lock_sha256)[:12]}..."]
        return []

    def _plan_check(self, check: Check, again: Callable[..., Check]) -> list[str]:
        if self.cert.plan is None or self.cert.host is None:
            return [f"{check.name} is {check.status} without the plan and the host it compares recorded"]
        derived = again(self.cert.plan, self.cert.host)
        if derived.status != check.status:
            return [f"{check.name} is {check.status}, but the recorded plan and host give {derived.status}"
                    + (f" ({derived.reason})" if derived.reason else "")]
        return []

    def _driver_meets_plan(self, check: Check) -> list[str]:
        return self._plan_check(check, check_driver)

    def _gpus_meet_plan(self, check: Check) -> list[str]:
        return self._plan_check(check, check_gpus)

    # ------------------------------------------------------------------ level 1

    def _import(self, check: Check) -> list[str]:
        version = check.details.get("version")
        if not version or version != self.cert.tensorflow.get("version"):
            return [f"import passed with TensorFlow {version or '(none)'}; the certificate says "
                    f"{self.cert.tensorflow.get('version') or '(none)'}"]
        return []

    def _build_info(self, check: Check) -> list[str]:
        found = script.build_info_problems(check.details, self.cert.tensorflow.get("version"), self.expect)
        return [f"build-info is {check.status} but its recorded build info says: {'; '.join(found)}"] if found else []

    def _gpus_visible(self, check: Check) -> list[str]:
        listed = check.details.get("gpus")
        if not isinstance(listed, list) or len(listed) != len(self.gpus):
            return [f"gpus-visible records {len(listed) if isinstance(listed, list) else 'no'} GPU(s); "
                    f"the certificate lists {len(self.gpus)}"]
        status, reason = script.gpu_count_verdict(len(listed), self.expect.get("gpus"), self.expect.get("no_gpu_reason"))
        if status != check.status:
            return [f"gpus-visible is {check.status}, but {len(listed)} GPU(s) listed where the host has "
                    f"{self.expect.get('gpus')} give {status}" + (f" ({reason})" if reason else "")]
        return []

    def _memory_growth(self, check: Check) -> list[str]:
        states = check.details.get("memory_growth")
        if not isinstance(states, dict) or len(states) != len(self.gpus) or not all(states.values()):
            return ["memory-growth passed without memory growth recorded as set on every GPU"]
        return []

    def _gpu_ops(self, check: Check) -> list[str]:
        results = check.details.get("results")
        if not isinstance(results, list) or not results or len(results) != len(self.gpus):
            return [f"gpu-ops passed with {len(results) if isinstance(results, list) else 'no'} GPU result(s) "
                    f"for {len(self.gpus)} GPU(s)"]
        problems = []
        for entry in results:
            gpu = entry.get("gpu") if isinstance(entry, dict) else None
            for op in ("matmul", "conv"):
                device = script.parse_device(str(entry.get(op + "_device") or "")) if gpu is not None else None
                if device != ("GPU", gpu):
                    problems.append(f"gpu-ops passed but its {op} for GPU {gpu} ran on "
                                    f"{entry.get(op + '_device') if isinstance(entry, dict) else '(nothing)'}")
                error = _number(entry.get(op + "_rel_error")) if isinstance(entry, dict) else None
                if error is None or not error <= script.OPS_RTOL:
                    problems.append(f"gpu-ops passed but its {op} on GPU {gpu} differs from the CPU by "
                                    f"{error if error is not None else '(not recorded)'} > {script.OPS_RTOL:g}")
        return problems

    # ------------------------------------------------------------------ levels 2 and 3

    def _trained(self, check: Check) -> list[str]:
        found = _training_problems(check.details, TRAINED[check.name])
        return [f"{check.name} is {check.status} but its recorded figures say: {'; '.join(found)}"] if found else []

    def _train(self, check: Check) -> list[str]:
        problems = self._trained(check)
        device = check.details.get("device")
        if device != ("GPU" if self.gpus else "CPU"):
            problems.append(f"train records it ran on {device}, with {len(self.gpus)} GPU(s) listed")
        return problems

    _xla = _trained

    def _mixed_precision(self, check: Check) -> list[str]:
        problems = self._trained(check)
        compute = (check.details.get("dtypes") or {}).get("compute")
        if compute != "float16":
            problems.append(f"mixed-precision passed computing in {compute}, not float16")
        return problems

    def _multi_gpu(self, check: Check) -> list[str]:
        problems = self._trained(check)
        if len(self.gpus) < 2 or check.details.get("replicas") != len(self.gpus):
            problems.append(f"multi-gpu passed with {check.details.get('replicas')} replica(s) for "
                            f"{len(self.gpus)} GPU(s)")
        return problems

    def _placement(self, check: Check) -> list[str]:
        found = script.placement_problems(list(check.details.get("variable_devices") or []),
                                          list(check.details.get("op_devices") or []), "GPU")
        return [f"placement passed but its recorded devices say: {'; '.join(found)}"] if found else []

    def _throughput(self, check: Check) -> list[str]:
        d = check.details
        gpu, cpu, ratio = (_number(d.get(k)) for k in ("gpu_images_per_second", "cpu_images_per_second", "ratio"))
        train = self.by_name.get("train")
        problems = []
        if gpu is None or train is None or gpu != _number(train.details.get("images_per_second")):
            problems.append("throughput passed without a GPU figure equal to the training's images per second")
        if gpu is not None and cpu and ratio is not None and ratio != round(gpu / cpu, 2):
            problems.append(f"throughput records a ratio of {ratio}; its figures give {round(gpu / cpu, 2)}")
        if check.status == PASS and ratio is not None and ratio < 1.0:
            problems.append(f"throughput passed with the GPU slower than the CPU (ratio {ratio})")
        return problems


def _level_problems(cert: Certificate) -> list[str]:
    problems = []
    if cert.level not in LEVELS:
        return [f"level {cert.level} is not a certification level"]
    names = [c.name for c in cert.checks]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"the check {name} is recorded more than once")
    for check in cert.checks:
        if check.name in PROCESS_FAILURES:
            if not 1 <= check.level <= cert.level:
                problems.append(f"{check.name} is recorded at level {check.level} of a level {cert.level} certificate")
            continue
        if check.name not in CHECK_LEVEL:
            problems.append(f"{check.name} is not a check gpuready makes")
        elif check.level != CHECK_LEVEL[check.name]:
            problems.append(f"{check.name} is a level {CHECK_LEVEL[check.name]} check, recorded at level {check.level}")
        elif check.level > cert.level:
            problems.append(f"{check.name} (level {check.level}) is recorded in a level {cert.level} certificate")
    stopped = any(n in PROCESS_FAILURES for n in names)  # the check process ended early: its checks are partial
    for level in range(0, cert.level + 1):
        if level > 0 and stopped:
            break
        missing = [n for n in LEVEL_CHECKS[level] if n not in names]
        if missing:
            problems.append(f"level {cert.level} is claimed but level {level}'s "
                            f"{'checks' if len(missing) > 1 else 'check'} {', '.join(missing)} "
                            f"{'are' if len(missing) > 1 else 'is'} not recorded")
    return problems


def _throughput_claims(cert: Certificate, by_name: dict[str, Check]) -> list[str]:
    claimed = cert.throughput
    check = by_name.get("throughput")
    if claimed is None:
        return []
    if check is None:
        return ["throughput figures are recorded without the throughput check"]
    problems = []
    if claimed.gpu_images_per_second is not None and check.status not in SUCCEEDED:
        problems.append(f"a GPU throughput of {claimed.gpu_images_per_second} images/s is claimed but the "
                        f"throughput check is {check.status}")
    for field in ("gpu_images_per_second", "cpu_images_per_second", "ratio"):
        value, measured = _number(getattr(claimed, field)), _number(check.details.get(field))
        if value != measured:
            problems.append(f"the certificate's {field} is {value}; the throughput check measured {measured}")
    return problems


def inconsistencies(cert: Certificate) -> list[str]:
    """Everything in `cert` that does not follow from its recorded checks (empty: it all does)."""
    problems = _level_problems(cert)
    judge = _Judge(cert)
    for check in cert.checks:
        problems += judge.problems(check)
    problems += _throughput_claims(cert, judge.by_name)
    if cert.plan is not None and cert.inputs is not None and cert.plan.device != cert.inputs.device:
        problems.append(f"the plan is for the {cert.plan.device}, the lock's inputs for the {cert.inputs.device}")
    if cert.level in LEVELS:
        device = cert.inputs.device if cert.inputs else None
        gpus = gpus_at_work(cert.level, device, len(cert.host.gpus) if cert.host else 0, len(cert.gpus))
        derived = decide_status(cert.checks, gpus)
        if derived != cert.status:
            failed = [c.name for c in cert.checks if c.status == FAIL]
            why = (f"{', '.join(failed)} failed" if failed else
                   f"{gpus} GPU(s) at work at level {cert.level}")
            problems.append(f"the status is {cert.status}, but the recorded checks give {derived} ({why})")
        if cert.status == CERTIFIED and cert.level >= 1 and not judge.succeeded("gpu-ops"):
            problems.append("certified on the GPU without the GPU check (gpu-ops) passing")
    return problems


__all__ = ["inconsistencies"]
