"""The planner: (host facts, matrix, constraints) -> the environment to build.

A pure function with no I/O. It tries TensorFlow releases newest first and
keeps the first that passes every rule; each rule that fails a release becomes
a `Rejection` with a stable code (PRODUCT.md). When no GPU build fits, it plans
for the CPU; when not even that exists, it raises `NoPlan` with the ways out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from packaging.version import Version

from .facts import Gpu, HostFacts, python_range, xy_tuple
from . import known_issues
from .flags import Constraints
from .gpu_code import JIT, NATIVE, NONE, SCOPE_NCCL, arch_number, claimed_sets, describe, gpu_code, names
from .matrix import KernelSet, Matrix, Release
from .plan import (CPU_FALLBACK, DRIVER_TOO_OLD, EXPERIMENTAL_GPU, GPU_ARCH_UNSUPPORTED, NO_GPU,
                   NOT_INSTALLABLE, PLATFORM_UNSUPPORTED, PTX_DRIVER_TOO_OLD, PTX_JIT, PYTHON_UNSUPPORTED,
                   UNKNOWN_GPU, WSL_LINUX_DRIVER, KNOWN_ISSUE, Finding, NoPlan, Plan, Rejection)

# Conservative kernel the conda virtual package `__linux` states (RHEL 8's 4.18).
LINUX_KERNEL_TARGET = "4.18"
DEFAULT_GLIBC_TARGET = "2.17"

# --------------------------------------------------------------------------- helpers


def _arch(text: str) -> tuple[int, int]:
    """"sm_89" -> (8, 9); "compute_90" -> (9, 0); "sm_120" -> (12, 0)."""
    digits = text.split("_", 1)[1]
    return int(digits[:-1]), int(digits[-1])


def _driver_ok(have: str, need: str) -> bool:
    return Version(have) >= Version(need)


def _gpu_label(gpu: Gpu) -> str:
    return f"GPU {gpu.index} ({gpu.name}, compute capability {gpu.compute_capability})"


@dataclass
class _Build:
    """One way to get a TensorFlow release: a PyPI wheel or a conda-forge build."""

    release: Release
    source: str  # "pypi" | "conda-forge"
    cuda: str  # build CUDA ("12.5.1" or conda-forge's "12.8")
    sass: tuple[str, ...]  # the build's claim
    ptx: tuple[str, ...]
    pythons: tuple[str, ...]
    glibc: str | None
    gpu_platforms: tuple[str, ...]
    kernels: tuple[KernelSet, ...] | None = None  # measured; None: the claim is all there is


@dataclass
class _Verdict:
    problems: list[tuple[str, str]] = field(default_factory=list)
    notes: list[Finding] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    needs_driver: str | None = None  # the driver that would lift a driver rejection


def _gpu_build(release: Release, matrix: Matrix, platform: str, flavor: str, python: str | None = None) -> _Build:
    """conda-forge's CUDA build for the conda flavor where it has one for the Python (a pinned
    `python`, if given); else the index's wheel, which the conda flavor installs in its pip section."""
    if flavor == "conda":
        cf = matrix.conda_forge_release(release.version)
        if cf is not None and platform in cf.platforms and (python is None or python in cf.pythons):
            return _Build(release, "conda-forge", cf.cuda[0], cf.sass, cf.ptx, cf.pythons,
                          None, cf.platforms)
    wheel = release.wheel("tensorflow", platform)
    kernels = release.kernels
    measured = kernels.sets if kernels is not None and kernels.sets and platform == "linux-64" else None
    return _Build(release, "pypi", release.cuda, release.sass, release.ptx,
                  wheel.pythons if wheel else (), wheel.glibc if wheel else None,
                  release.gpu_platforms, measured)


def _python_for(pythons: tuple[str, ...], host: HostFacts, constraints: Constraints) -> str:
    """The conda flavor brings its own Python unless --python pinned one."""
    if host.python in pythons or constraints.flavor != "conda" or constraints.python_pinned:
        return host.python
    return max(pythons, key=xy_tuple) if pythons else host.python


def _check_gpu_build(build: _Build, host: HostFacts, matrix: Matrix, python: str) -> _Verdict:
    verdict = _Verdict()
    version = str(build.release.version)
    windows = host.wsl or host.platform == "win-64"
    column = "Windows" if windows else "Linux"
    where = "WSL2 (Windows driver)" if host.wsl else host.platform

    if host.platform not in build.gpu_platforms:
        verdict.problems.append((PLATFORM_UNSUPPORTED,
            f"TensorFlow {version} has no GPU build for {host.platform} "
            f"(GPU builds: {', '.join(build.gpu_platforms)}{', and WSL2' if 'linux-64' in build.gpu_platforms else ''})"))
        return verdict
    if python not in build.pythons:
        verdict.problems.append((PYTHON_UNSUPPORTED,
            f"TensorFlow {version} has no {host.platform} build for Python {python} "
            f"(it has {python_range(build.pythons)})"))
    if build.glibc and host.glibc and Version(host.glibc) < Version(build.glibc):
        verdict.problems.append((PLATFORM_UNSUPPORTED,
            f"TensorFlow {version}'s wheel needs glibc >= {build.glibc}; this host has {host.glibc}"))

    driver = host.driver.version
    assert driver is not None
    floor = matrix.floor(build.cuda, windows)
    major = Version(build.cuda).major
    if floor is None:
        verdict.problems.append((DRIVER_TOO_OLD,
            f"TensorFlow {version} is built with CUDA {build.cuda}; no {column} driver is listed for CUDA {major}"))
    elif not _driver_ok(driver, floor):
        verdict.problems.append((DRIVER_TOO_OLD,
            f"TensorFlow {version} is built with CUDA {build.cuda}, which needs a {column} driver >= {floor} "
            f"(CUDA {major} minor-version compatibility); {where} has {driver}"))
        verdict.needs_driver = floor
    else:
        verdict.reasons.append(f"driver {driver} meets CUDA {major}'s floor {floor}")

    for gpu in host.gpus:
        _check_gpu(gpu, build, host, matrix, verdict, driver, column, where)
    if build.kernels is None:
        why = build.release.kernels.unmeasured if build.release.kernels is not None else ""
        verdict.reasons.append(f"TensorFlow {version}'s kernels were not measured{f' ({why})' if why else ''}: "
                               "its architectures are build_info's claim, and PTX is taken to need the build "
                               "CUDA's own driver")
    return verdict


def _check_gpu(gpu: Gpu, build: _Build, host: HostFacts, matrix: Matrix, verdict: _Verdict, driver: str,
               column: str, where: str) -> None:
    """The kernel-set rule (model/gpu_code.py) for one GPU: native, PTX JIT with the ISA's driver, or none."""
    version = str(build.release.version)
    windows = host.wsl or host.platform == "win-64"
    if gpu.compute_capability is None:
        verdict.notes.append(Finding(UNKNOWN_GPU,
            f"GPU {gpu.index} ({gpu.name}): compute capability unknown; support not verified"))
        return
    cc = xy_tuple(gpu.compute_capability)
    sets = build.kernels if build.kernels is not None else claimed_sets(build.sass, build.ptx)
    code = gpu_code(sets, cc)
    if cc[0] in matrix.experimental_majors:
        how = ("this build has native code for it, but no field report shows TensorFlow training there"
               if not code.of(JIT) and not code.of(NONE) else
               "TensorFlow wheels reach this architecture only through PTX and have known failures on it "
               "(tensorflow#89272, #97387)")
        verdict.notes.append(Finding(EXPERIMENTAL_GPU, f"{_gpu_label(gpu)}: {how}; treat as experimental"))
    missing = code.of(NONE)
    nccl_missing = code.of(NONE, SCOPE_NCCL)
    if nccl_missing and len(host.gpus) > 1:
        missing += nccl_missing
    elif nccl_missing:
        verdict.reasons.append(f"its {nccl_missing[0].kernel_set.label} have no code for {_gpu_label(gpu)}: "
                               "only multi-GPU all-reduce uses them, and this host has one GPU")
    if missing:
        verdict.problems.append((GPU_ARCH_UNSUPPORTED,
            f"TensorFlow {version} has no code for {_gpu_label(gpu)} in "
            + "; ".join(describe(r.kernel_set) for r in missing)))
        return
    jit = code.of(JIT)
    if not jit:
        best = max((r.code for r in code.of(NATIVE) if r.code), key=arch_number)
        verdict.reasons.append(f"{_gpu_label(gpu)} runs native code ({best}) in every kernel set")
        return
    named = names([r.kernel_set for r in jit])
    if code.isa is not None:
        found = matrix.isa_driver(code.isa, windows)
        cuda, need = found if found else (None, None)
        needs = f"PTX ISA {code.isa}, which needs a {column} driver >= {need or 'unknown'} (CUDA {cuda}) to JIT"
    else:
        need = matrix.full_driver(build.cuda, windows)
        needs = (f"PTX of unknown ISA made by CUDA {build.cuda}, taken to need a {column} driver >= "
                 f"{need or 'unknown'} to JIT")
    if need is None or not _driver_ok(driver, need):
        verdict.problems.append((PTX_DRIVER_TOO_OLD,
            f"TensorFlow {version} reaches {_gpu_label(gpu)} only through PTX for its {named}: {needs} "
            f"(minor-version compatibility does not cover PTX); {where} has {driver}"))
        if need is not None and (verdict.needs_driver is None or Version(need) > Version(verdict.needs_driver)):
            verdict.needs_driver = need
        return
    ptx = ", ".join(sorted({r.code for r in jit if r.code}))
    verdict.notes.append(Finding(PTX_JIT,
        f"{_gpu_label(gpu)} runs its {named} only through {ptx} PTX JIT ({needs.split(', which')[0]}): "
        "the first start compiles kernels and can take minutes; the driver caches them afterwards"))
    verdict.reasons.append(f"{_gpu_label(gpu)} runs its {named} through {ptx} PTX (driver {driver} >= {need})")


def _pip_requirements(release: Release, matrix: Matrix, python: str) -> tuple[tuple[str, ...], str, list[str], str | None]:
    """TensorFlow plus its CUDA pins: (lines, and_cuda mode, reasons, not-installable reason)."""
    version = str(release.version)
    pins = matrix.pins_for(release)
    if pins is None:
        return (), "none", [], (
            f"TensorFlow {version} has no and-cuda extra and its CUDA {release.cuda} / cuDNN {release.cudnn} "
            "libraries have no wheels on the package index; use a newer release, or CUDA from the system")
    if release.and_cuda == "none":
        return ((f"tensorflow=={version}", *pins.packages), "none",
                [f"CUDA {pins.cuda} / cuDNN {pins.cudnn} from the {pins.name} wheel set (no and-cuda extra)"], None)
    if python in release.extra_unresolvable_pythons:
        return ((f"tensorflow=={version}", *pins.packages), "taken-apart",
                [f"and-cuda extra taken apart into its pins: {release.extra_unresolvable_reason}"], None)
    how = "pinned to the tested set" if release.and_cuda == "range" else "the extra's exact pins"
    return ((f"tensorflow[and-cuda]=={version}", *pins.packages), "extra",
            [f"CUDA {pins.cuda} / cuDNN {pins.cudnn} wheels ({how})"], None)


def _env_name(release: Release, device_tag: str, python: str, flavor: str, platform: str) -> str:
    name = f"tf{release.minor}-{device_tag}-py{python}-{flavor}"
    return name if platform == "linux-64" else f"{name}-{platform}"


def _virtual_packages(platform: str, cuda: str | None, glibc: str | None) -> dict[str, str]:
    if platform.startswith("linux"):
        packages = {"__unix": "0", "__linux": LINUX_KERNEL_TARGET, "__glibc": glibc or DEFAULT_GLIBC_TARGET}
        if cuda:
            packages["__cuda"] = cuda
        return packages
    if platform.startswith("osx"):
        return {"__unix": "0", "__osx": "11.0"}
    return {"__win": "0"}


def _short_cuda(cuda: str) -> str:
    version = Version(cuda)
    return f"{version.major}.{version.minor}"


# --------------------------------------------------------------------------- planning


def make_plan(host: HostFacts, matrix: Matrix, constraints: Constraints = Constraints()) -> Plan:
    """Choose the newest TensorFlow that passes every rule for this host."""
    candidates = [r for r in matrix.releases
                  if not r.review  # added by matrix.refresh with facts missing: a person must look first
                  and (constraints.tf is None or constraints.tf.contains(r.version, prereleases=True))]
    if not candidates:
        known = f"{matrix.releases[-1].version}–{matrix.releases[0].version}" if matrix.releases else "none"
        reviewing = [str(r.version) for r in matrix.releases if r.review and (
            constraints.tf is None or constraints.tf.contains(r.version, prereleases=True))]
        why = f"; under review in the matrix: {', '.join(reviewing)}" if reviewing else ""
        raise NoPlan([f"no TensorFlow release in the matrix matches --tf {constraints.tf} (known: {known}{why})"],
                     ["relax --tf", "run `invoke matrix.refresh` if the release is new"], host=host)

    warnings: list[Finding] = []
    rejected: list[Rejection] = []
    upgrade: tuple[str, str] | None = None  # (driver, release) that a driver upgrade would unlock

    if host.wsl and host.driver.version and len(host.driver.version.split(".")) == 3:
        warnings.append(Finding(WSL_LINUX_DRIVER,
            f"driver {host.driver.version} looks like a Linux driver number, but under WSL2 the Windows "
            "driver is what runs (nvidia-smi there prints e.g. 566.36; Device Manager 32.0.15.6636): the "
            "plan used the Windows column of Table 3 for it"))
    usable = host.with_(gpus=host.usable_gpus)  # the rules serve the GPUs that answer
    broken = [g for g in host.gpus if not g.healthy]
    if not host.driver.present or not usable.gpus or host.jetson:
        warnings.append(Finding(NO_GPU, _no_gpu_detail(host)))
    else:
        for release in candidates:
            build = _gpu_build(release, matrix, host.platform, constraints.flavor,
                               host.python if constraints.python_pinned else None)
            python = _python_for(build.pythons, host, constraints)
            verdict = _check_gpu_build(build, usable, matrix, python)
            if broken:
                verdict.reasons.append(f"planned for the {len(usable.gpus)} GPU(s) that answer; not usable: " +
                                       "; ".join(f"GPU {g.index} ({g.problem})" for g in broken))
            requirements: tuple[str, ...] = ()
            mode, install_reasons = "none", []
            if not verdict.problems and build.source == "pypi":
                requirements, mode, install_reasons, blocked = _pip_requirements(release, matrix, python)
                if blocked:
                    verdict.problems.append((NOT_INSTALLABLE, blocked))
            if verdict.problems:
                rejected.extend(Rejection(str(release.version), code, msg) for code, msg in verdict.problems)
                if verdict.needs_driver and upgrade is None and all(
                        code in (DRIVER_TOO_OLD, PTX_DRIVER_TOO_OLD) for code, _ in verdict.problems):
                    upgrade = (verdict.needs_driver, str(release.version))
                continue
            return _gpu_plan(build, python, requirements, mode, verdict.reasons + install_reasons,
                             warnings + verdict.notes, rejected, host, matrix, constraints)
        message = "no GPU build of TensorFlow fits this host, so the plan is for the CPU"
        if upgrade:
            message += f"; a driver >= {upgrade[0]} would allow TensorFlow {upgrade[1]} on the GPU"
        warnings.append(Finding(CPU_FALLBACK, message))

    return _cpu_plan(candidates, host, matrix, constraints, warnings, rejected)


def _no_gpu_detail(host: HostFacts) -> str:
    """Why there is no GPU to plan for, in the words of what detection found (a driver
    mismatch, a container that lost its GPUs, a Jetson) where it found something."""
    what_if = "pass --driver VERSION and --gpu CC for a what-if plan"
    problem = next(iter(host.problems), None) or next(iter(host.notes), None)
    if problem is not None:
        return f"{problem.message} {problem.fix} ({what_if})"
    if not host.driver.present:
        return f"no NVIDIA driver found ({what_if})"
    if host.gpus:
        return (f"NVIDIA driver {host.driver.version} found but no GPU answers: " +
                "; ".join(f"GPU {g.index}: {g.problem}" for g in host.gpus) + f" ({what_if})")
    return (f"NVIDIA driver {host.driver.version} found but no GPU is visible "
            "(a container without GPU access? pass --gpu CC for a what-if plan)")


def _gpu_plan(build: _Build, python: str, requirements: tuple[str, ...], mode: str, reasons: list[str],
              warnings: list[Finding], rejected: list[Rejection], host: HostFacts, matrix: Matrix,
              constraints: Constraints) -> Plan:
    release = build.release
    version = str(release.version)
    if build.source == "conda-forge":
        cuda, cudnn = _short_cuda(build.cuda), release.cudnn
        conda = (f"python={python}", "pip", f"tensorflow={version}=cuda*", f"cuda-version={cuda}")
        reasons = [f"TensorFlow {version} CUDA build from {matrix.conda_channel} (CUDA {cuda})", *reasons]
    else:
        pins = matrix.pins_for(release)
        assert pins is not None
        cuda, cudnn = pins.cuda, pins.cudnn
        conda = (f"python={python}", "pip") if constraints.flavor == "conda" else ()
    environment: dict[str, str] = {}
    # An issue's flavor is where TensorFlow comes from: the conda flavor's pip section is the index's wheel.
    origin = "conda" if build.source == "conda-forge" else "pip"
    for known in known_issues.apply(matrix, version, host, host.platform, origin, requirements, conda):
        requirements, conda = known.requirements, known.conda_packages
        environment.update(known.environment)
        warnings = [*warnings, Finding(KNOWN_ISSUE, known.message)]
        cudnn = _cudnn_of(requirements) or cudnn
    env = _env_name(release, f"cuda{cuda}", python, constraints.flavor, host.platform)
    return Plan(
        device="gpu", tensorflow=version, python=python, cuda=cuda, cudnn=cudnn,
        flavor=constraints.flavor, env=env, platform=host.platform, distribution="tensorflow",
        source=build.source, requirements=requirements, and_cuda=mode if build.source == "pypi" else "none",
        conda_packages=conda, conda_channel=matrix.conda_channel if constraints.flavor == "conda" else None,
        virtual_packages=_virtual_packages(host.platform, cuda, build.glibc),
        glibc=build.glibc, build_cuda=build.cuda,
        reasons=(f"TensorFlow {version} is the newest release that passes every rule for this host", *reasons),
        warnings=tuple(_unique(warnings)), rejected=_ordered(rejected), host=host, environment=environment,
    )


def _cudnn_of(requirements: tuple[str, ...]) -> str | None:
    """"9.24" from the plan's nvidia-cudnn pin (a known issue's remedy may have moved it)."""
    for name, version in known_issues.pinned_versions(requirements).items():
        if name.startswith("nvidia-cudnn-"):
            parts = version.split(".")
            return ".".join(parts[:2])
    return None


def _cpu_plan(candidates: list[Release], host: HostFacts, matrix: Matrix, constraints: Constraints,
              warnings: list[Finding], rejected: list[Rejection]) -> Plan:
    cpu_rejected: list[Rejection] = []
    for release in candidates:
        version = str(release.version)
        cf = matrix.conda_forge_release(release.version) if constraints.flavor == "conda" else None
        if cf is not None and host.platform in cf.platforms:
            python = _python_for(cf.pythons, host, constraints)
            if python in cf.pythons:
                env = _env_name(release, "cpu", python, "conda", host.platform)
                return _cpu(release, python, "tensorflow", "conda-forge", (),
                            (f"python={python}", "pip", f"tensorflow={version}=cpu*"), None, env,
                            host, matrix, constraints, warnings, rejected)
        wheels = [(d, release.wheel(d, host.platform)) for d in ("tensorflow-cpu", "tensorflow")]
        wheels = [(d, w) for d, w in wheels if w is not None]
        if not wheels:
            cpu_rejected.append(Rejection(version, PLATFORM_UNSUPPORTED,
                                          f"TensorFlow {version} has no wheel for {host.platform}"))
            continue
        python = _python_for(tuple(p for _, w in wheels for p in w.pythons), host, constraints)
        fitting = [(d, w) for d, w in wheels if python in w.pythons]
        if not fitting:
            cpu_rejected.append(Rejection(version, PYTHON_UNSUPPORTED,
                f"TensorFlow {version} has no {host.platform} wheel for Python {python} "
                f"(it has {python_range(wheels[0][1].pythons)})"))
            continue
        dist, wheel = fitting[0]
        if wheel.glibc and host.glibc and Version(host.glibc) < Version(wheel.glibc):
            cpu_rejected.append(Rejection(version, PLATFORM_UNSUPPORTED,
                f"TensorFlow {version}'s wheel needs glibc >= {wheel.glibc}; this host has {host.glibc}"))
            continue
        conda = (f"python={python}", "pip") if constraints.flavor == "conda" else ()
        env = _env_name(release, "cpu", python, constraints.flavor, host.platform)
        return _cpu(release, python, dist, "pypi", (f"{dist}=={version}",), conda, wheel.glibc, env,
                    host, matrix, constraints, warnings, rejected + cpu_rejected)

    all_rejected = _ordered(rejected + cpu_rejected)
    raise NoPlan(_no_plan_reasons(all_rejected, host), _ways_out(candidates, all_rejected, host, constraints),
                 all_rejected, host)


def _cpu(release: Release, python: str, dist: str, source: str, requirements: tuple[str, ...],
         conda: tuple[str, ...], glibc: str | None, env: str, host: HostFacts, matrix: Matrix,
         constraints: Constraints, warnings: list[Finding], rejected: list[Rejection]) -> Plan:
    version = str(release.version)
    return Plan(
        device="cpu", tensorflow=version, python=python, cuda=None, cudnn=None,
        flavor=constraints.flavor, env=env, platform=host.platform, distribution=dist, source=source,
        requirements=requirements, and_cuda="none", conda_packages=conda,
        conda_channel=matrix.conda_channel if constraints.flavor == "conda" else None,
        virtual_packages=_virtual_packages(host.platform, None, glibc), glibc=glibc, build_cuda=None,
        reasons=(f"{dist} {version} is the newest CPU build for {host.platform} and Python {python}",),
        warnings=tuple(_unique(warnings)), rejected=_ordered(rejected), host=host,
    )


def _no_plan_reasons(rejected: tuple[Rejection, ...], host: HostFacts) -> list[str]:
    codes = {r.code for r in rejected}
    reasons = []
    if PYTHON_UNSUPPORTED in codes:
        reasons.append(f"no TensorFlow release has a {host.platform} build for Python {host.python}")
    if PLATFORM_UNSUPPORTED in codes:
        reasons.append(f"no TensorFlow release in range has a wheel for {host.platform}"
                       + (f" with glibc {host.glibc}" if host.glibc else ""))
    return reasons or [r.message for r in rejected[:3]]


def _ways_out(candidates: list[Release], rejected: tuple[Rejection, ...], host: HostFacts,
              constraints: Constraints) -> list[str]:
    ways = []
    codes = {r.code for r in rejected}
    if PYTHON_UNSUPPORTED in codes:
        newest = candidates[0]
        wheel = newest.wheel("tensorflow", host.platform) or newest.wheel("tensorflow-cpu", host.platform)
        if wheel:
            ways.append(f"use another Python: TensorFlow {newest.version} supports {python_range(wheel.pythons)} "
                        f"(--python {max(wheel.pythons, key=xy_tuple)})")
        if constraints.flavor != "conda":
            ways.append("use the conda flavor (--flavor conda), which brings its own Python")
    if PLATFORM_UNSUPPORTED in codes:
        ways.append("plan for linux-64 or WSL2, where TensorFlow publishes its GPU and CPU wheels")
    if constraints.tf is not None:
        ways.append("relax --tf")
    return ways


def _unique(findings: Iterable[Finding]) -> list[Finding]:
    return list(dict.fromkeys(findings))


def _ordered(rejected: Iterable[Rejection]) -> tuple[Rejection, ...]:
    unique = list(dict.fromkeys(rejected))
    return tuple(sorted(unique, key=lambda r: Version(r.tensorflow), reverse=True))
