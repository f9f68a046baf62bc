"""Detection over the nvidia-smi corpus (tests/data/corpus/nvidia-smi): real outputs that users
pasted into public threads, replayed through the doubles, and what each thread established.

A fixture's outputs go where detection reads them on a real machine: the plain `nvidia-smi`
(or, for a Windows host, the Windows table) is the fake nvidia-smi's answer without arguments,
`nvidia_smi_L` its answer to `-L`, `proc_version` /proc/driver/nvidia/version under a fake root,
`nv_tegra_release` /etc/nv_tegra_release, `dmesg` the fake dmesg's log (with the nvidia module
"loaded" in sysfs: it printed those lines). The CSV query detection makes (its own fields) was
never pasted: where the primary output is an NVML or driver error, nvidia-smi prints that same
error for every call, so the query answers it too; otherwise the query is not recorded (the fake
exits 127) and detection goes on without it. A pasted `query_csv` (other fields) is read by
the same row parser with the fields its command asked for, and takes the place of the GPU list
there, as detection's own query would. Where nvidia-smi shows an NVML failure, the NVML double
raises that failure; otherwise NVML is absent, so that nvidia-smi's text is what is read.

The exit status of an error text is 1 where the thread does not state it: detection must not
depend on the number. Each fixture's `[expected]` comes from its thread (the corpus README).
"""

from __future__ import annotations

import json
import sys
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pynvml

from gpuready import detect as D
from gpuready.model.facts import Gpu, HostFacts

from .fake_nvml import FakeNvml

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parent / "data" / "corpus" / "nvidia-smi"

# Outputs of commands detection does not run; the same states are tested through the doubles
# where detection can see them (the NVML double's Unknown Error for 074).
NOT_READ = {
    "056": "the query's field list is not in the thread, so its CSV cannot be mapped to fields",
    "058": "the first line of `nvidia-smi -h` (a tool version) is not read by detection",
    "074": "`nvidia-smi -q` is not read by detection (NVML's per-GPU Unknown Error is tested instead)",
}
# Fixtures whose thread shows the output inside a container (title or established text).
IN_CONTAINER = {"010", "014", "015", "016", "017", "018", "026", "033", "073"}
WINDOWS = {"034", "069"}  # Windows hosts (not WSL): the Windows driver column
AARCH64 = {"045", "046", "047", "048", "067"}  # Jetsons and the Raspberry Pi CM5
NVML_ERRORS = (  # what nvidia-smi printed -> the error NVML raises on that machine
    ("Driver/library version mismatch", pynvml.NVMLError_LibRmVersionMismatch),
    ("Failed to initialize NVML: Unknown Error", pynvml.NVMLError_Unknown),
    ("GPU access blocked by the operating system", pynvml.NVMLError_OperatingSystem),
    ("couldn't communicate with the NVIDIA driver", pynvml.NVMLError_DriverNotLoaded),
)


@dataclass(frozen=True)
class Fixture:
    name: str  # "023-r525-err-row-next-to-healthy-a40"
    data: dict[str, Any]

    @property
    def number(self) -> str:
        return self.name[:3]

    @property
    def outputs(self) -> dict[str, Any]:
        return self.data["outputs"]

    @property
    def expected(self) -> dict[str, Any]:
        return self.data["expected"]

    @property
    def situation(self) -> str:
        return self.data["situation"]

    @property
    def plain(self) -> str | None:
        """The plain nvidia-smi output detection reads (None: no nvidia-smi on the machine)."""
        text = self.outputs.get("nvidia_smi") or self.outputs.get("windows_nvidia_smi")
        if text is None and "nvidia_smi_L" not in self.outputs and "nvidia_smi_warning" not in self.outputs:
            return None
        if text is not None and "command not found" in text:
            return None
        return text or ""


def load() -> list[Fixture]:
    return [Fixture(p.stem, tomllib.loads(p.read_text(encoding="utf-8"))) for p in sorted(CORPUS.glob("*.toml"))]


def is_table(text: str) -> bool:
    return "NVIDIA-SMI" in text or "Driver Version" in text or text.lstrip().startswith(("|", "+"))


def install(folder: Path, name: str, scenario: dict[str, Any]) -> Path:
    """The replaying double (fake_nvidia_smi.py) as the executable `name`, answering `scenario`."""
    folder.mkdir(parents=True, exist_ok=True)
    exe = folder / name
    source = (HERE / "fake_nvidia_smi.py").read_text(encoding="utf-8")
    exe.write_text(f"#!{sys.executable}\n{source}", encoding="utf-8")
    exe.chmod(0o755)
    (folder / f"{name}.json").write_text(json.dumps(scenario), encoding="utf-8")
    return exe


def _answer(text: str, exit_code: int, stderr: str | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"text": text, "exit": exit_code}
    if stderr:
        answer["stderr"] = stderr + "\n"
    return answer


def _nvml(fixture: Fixture) -> Any:
    shown = "\n".join(str(fixture.outputs.get(k, "")) for k in ("nvidia_smi", "nvidia_smi_L"))
    last = shown.strip().splitlines()[-1] if shown.strip() else ""
    for words, error in NVML_ERRORS:
        if words in shown and (words in last or not is_table(shown)):
            return FakeNvml(fail={"nvmlInit": error()})
    if fixture.number == "073":  # the thread: no nvidia-smi, no /dev/nvidia*, no libnvidia-ml
        return FakeNvml(fail={"nvmlInit": pynvml.NVMLError_LibraryNotFound()})
    return D.NO_NVML


def run(fixture: Fixture, tmp: Path, matrix: Any) -> HostFacts:
    """Detection on a machine that printed this fixture's outputs."""
    root, bin_dir = tmp / "root", tmp / "bin"
    for folder in ("proc", "dev", "etc"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    bin_dir.mkdir(parents=True, exist_ok=True)
    out = fixture.outputs

    def write(relative: str, text: str) -> None:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    if fixture.situation == "wsl" and fixture.number not in WINDOWS:
        write("proc/sys/kernel/osrelease", "5.15.133.1-microsoft-standard-WSL2\n")
    if fixture.number in IN_CONTAINER:
        write(".dockerenv", "")
        if fixture.number != "073":
            write("dev/nvidia0", "")
            write("dev/nvidiactl", "")
    if "proc_version" in out:
        write("proc/driver/nvidia/version", out["proc_version"])
    if "nv_tegra_release" in out:
        write("etc/nv_tegra_release", out["nv_tegra_release"])
    if "dmesg" in out:
        (root / "sys/module/nvidia").mkdir(parents=True, exist_ok=True)
        install(bin_dir, "dmesg", {"banner": _answer(out["dmesg"], 0)})
    plain = fixture.plain
    if plain is not None:
        stated = out.get("nvidia_smi_exit")
        table = is_table(plain)
        exit_code = stated if stated is not None else (0 if table else 1)
        warning = out.get("nvidia_smi_warning")
        scenario: dict[str, Any] = {"banner": _answer(plain, exit_code, warning)}
        if not table:  # an NVML or driver error: every call prints it
            scenario["query"] = scenario["banner"]
            scenario.setdefault("list", scenario["banner"])
        if "nvidia_smi_L" in out:
            scenario["list"] = _answer(out["nvidia_smi_L"], 0)
        install(bin_dir, "nvidia-smi", scenario)
    platform, machine = ("win32", "AMD64") if fixture.number in WINDOWS else \
        ("linux", "aarch64" if fixture.number in AARCH64 else "x86_64")
    return D.detect_host(matrix, nvml=_nvml(fixture), root=root, environ={"PATH": str(bin_dir)},
                         sys_platform=platform, machine=machine, glibc=lambda: "2.36", smi_timeout=10.0)


def with_query(fixture: Fixture, facts: HostFacts, matrix: Any) -> HostFacts:
    """The pasted CSV in place of the query detection would have made (see the module docstring)."""
    csv = fixture.outputs.get("query_csv")
    if not csv:
        return facts
    from gpuready.detect import smi_text
    from gpuready.detect._common import Lookup
    fields = smi_text.query_fields(fixture.outputs.get("query_command", ""))
    parsed = smi_text.parse_query(csv, fields, Lookup(matrix))
    if not parsed.gpus or not all(g.name for g in parsed.gpus):  # a query without names lists no GPUs
        return facts
    driver = facts.driver if not parsed.driver else replace(facts.driver, version=parsed.driver, source="nvidia-smi")
    return facts.with_(gpus=smi_text.combine(parsed.gpus, facts.gpus), driver=driver)


def _with_old_query(fixture: Fixture, facts: HostFacts, matrix: Any) -> HostFacts:
    import re

    from gpuready.detect import smi as old
    from gpuready.detect._common import Failed, Lookup

    match = re.search(r"--query-gpu=(\S+)", fixture.outputs.get("query_command", ""))
    try:
        driver, gpus = old._parse_query(fixture.outputs["query_csv"], match.group(1).split(",") if match else (),
                                        Lookup(matrix))
    except (Failed, KeyError):
        return facts
    return facts.with_(gpus=gpus, driver=replace(facts.driver, version=driver, source="nvidia-smi"))


# --------------------------------------------------------------------------- what the thread says


def _name_ok(expected: str, got: str) -> bool:
    if expected.endswith("...") and got.startswith(expected[:-3].rstrip()):
        return True  # the table truncates; a query or -L gives the whole name
    return got == expected


def _note(facts: HostFacts, code: str) -> Any:
    return next((n for n in getattr(facts, "notes", ()) if n.code == code), None)


def _text(note: Any) -> str:
    return f"{note.title} {note.message} {note.fix}".lower() if note else ""


def wrong(fixture: Fixture, facts: HostFacts, messages: bool = True) -> list[str]:
    """Where detection differs from the fixture's expected answer (empty: fully right);
    messages=False leaves out the situation's message (the facts alone)."""
    want = fixture.expected
    out: list[str] = []
    driver = facts.driver
    if (driver.version or "") != want["driver"]:
        out.append(f"driver {driver.version!r}, expected {want['driver']!r}")
    if want["cuda"] and driver.cuda != want["cuda"]:
        out.append(f"CUDA {driver.cuda!r}, expected {want['cuda']!r}")
    if not want["cuda"] and fixture.situation == "jetson" and driver.cuda is not None:
        out.append(f"CUDA {driver.cuda!r} derived for a Jetson from the desktop driver table")
    module = getattr(driver, "kernel_module", None)
    if (module or "") != want["kernel_module"]:
        out.append(f"kernel module {module!r}, expected {want['kernel_module']!r}")
    gpus: dict[int, Gpu] = {g.index: g for g in facts.gpus}
    expected_gpus = want.get("gpus", [])
    if sorted(gpus) != sorted(g["index"] for g in expected_gpus):
        out.append(f"GPUs {sorted(gpus)}, expected {[g['index'] for g in expected_gpus]}")
    for exp in expected_gpus:
        got = gpus.get(exp["index"])
        if got is None:
            continue
        if not _name_ok(exp["name"], got.name):
            out.append(f"GPU {exp['index']} name {got.name!r}, expected {exp['name']!r}")
        if (got.memory_mib or 0) != exp["memory_mib"]:
            out.append(f"GPU {exp['index']} memory {got.memory_mib!r}, expected {exp['memory_mib']}")
        if getattr(got, "healthy", True) != exp["healthy"]:
            out.append(f"GPU {exp['index']} healthy {getattr(got, 'healthy', True)}, expected {exp['healthy']}")
    mig = bool(getattr(facts, "mig", False))
    if mig != want["mig"]:
        out.append(f"MIG {mig}, expected {want['mig']}")
    return out + (_message_wrong(fixture, facts) if messages else [])


def _message_wrong(fixture: Fixture, facts: HostFacts) -> list[str]:
    """The specific message each situation needs, where the primary output shows it."""
    want, situation, shown = fixture.expected, fixture.situation, fixture.outputs.get("nvidia_smi", "") or ""
    checks: list[tuple[str, list[str]]] = []  # (note code, words its text must hold)
    if situation == "driver-library-mismatch":
        checks.append(("driver-library-mismatch", ["reboot"] + [v for v in (want["driver"], want["kernel_module"]) if v]))
    elif situation == "container-lost-after-daemon-reload" and fixture.number != "018":  # 018: the healthy "before"
        checks.append(("container-lost-gpus", ["restart", "daemon-reload"]))
    elif situation == "container-no-gpu" and fixture.plain is None:
        checks.append(("container-no-gpu", ["--gpus"]))
    elif situation == "jetson":
        checks.append(("jetson", ["pip", "jetpack"]))
    elif situation == "mig":
        checks.append(("mig-enabled", ["mig"]))
    elif situation in ("gpu-lost", "err-row"):
        checks.append(("gpus-broken", ["reboot"]))
    elif situation == "no-driver" and "couldn't communicate" in shown:
        checks.append(("driver-not-loaded", ["nouveau"] if "dmesg" in fixture.outputs else []))
    elif situation == "no-devices":
        checks.append(("no-devices", ["rminitadapter"]))
    elif situation == "inforom-warning":
        checks.append(("inforom-corrupted", ["inforom"]))
    elif situation == "wsl" and "couldn't communicate" in shown:
        checks.append(("wsl-gpu-not-exposed", ["wsl"]))
    elif situation == "wsl" and "blocked by the operating system" in shown:
        checks.append(("gpu-access-blocked", ["wddm"]))
    out = []
    for code, words in checks:
        note = _note(facts, code)
        if note is None:
            out.append(f"no {code!r} note (notes: {[n.code for n in getattr(facts, 'notes', ())]})")
            continue
        missing = [w for w in words if w.lower() not in _text(note)]
        if missing:
            out.append(f"the {code!r} note lacks {missing}: {note.message} {note.fix}")
    return out
