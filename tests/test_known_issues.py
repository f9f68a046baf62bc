"""Every entry of matrix/known-issues.toml, table-driven: when it applies, and what its remedy does.

The plans are the planner's own (what-if hosts); entries that gpuready's own pins keep out of reach
(an unpinned cuDNN 9.28, a system ptxas 12.3.103, conda-forge's CUDA 12.9 build) are checked against
the lines a user's own install would have.
"""

from __future__ import annotations

import pytest

from gpuready.model import known_issues as K
from gpuready.model.facts import Gpu, HostFacts
from gpuready.model.flags import Constraints, apply_overrides, parse_tf_spec
from gpuready.model.planner import make_plan

CUDNN_93 = "nvidia-cudnn-cu12==9.3.0.75"


def host(*ccs: str) -> HostFacts:
    return HostFacts(platform="linux-64", python="3.11", glibc="2.36").with_(
        gpus=tuple(Gpu(i, "what-if", cc) for i, cc in enumerate(ccs)))


# issue id, TensorFlow, GPUs, origin ("pip": the index's wheel, "conda": conda-forge), the plan's lines,
# applies?, the pin after the remedy (None: unchanged)
TABLE = [
    ("tf221-cudnn-autotuner", "2.21.0", ("7.5",), "pip", (CUDNN_93,), True, "nvidia-cudnn-cu12==9.24.0.43"),
    ("tf221-cudnn-autotuner", "2.21.0", ("8.0", "8.9"), "pip", (CUDNN_93,), True, "nvidia-cudnn-cu12==9.24.0.43"),
    ("tf221-cudnn-autotuner", "2.21.0", ("8.0", "6.0"), "pip", (CUDNN_93,), True, None),  # 9.24 cannot serve 6.0
    ("tf221-cudnn-autotuner", "2.21.0", ("7.5",), "pip", ("nvidia-cudnn-cu12==9.24.0.43",), False, None),
    ("tf221-cudnn-autotuner", "2.20.0", ("7.5",), "pip", (CUDNN_93,), False, None),
    ("tf221-cudnn-autotuner", "2.21.0", ("6.1",), "pip", (CUDNN_93,), False, None),
    ("tf221-autotuner-pre-turing", "2.21.0", ("6.0",), "pip", (CUDNN_93,), True, None),
    ("tf221-autotuner-pre-turing", "2.21.0", ("7.5",), "pip", (CUDNN_93,), False, None),
    ("blackwell-pip-invalid-ptx", "2.21.0", ("12.0",), "pip", (), True, None),
    ("blackwell-pip-invalid-ptx", "2.16.2", ("12.0",), "pip", (), True, None),
    ("blackwell-pip-invalid-ptx", "2.19.1", ("12.0",), "conda", (), False, None),
    ("blackwell-pip-invalid-ptx", "2.21.0", ("10.0",), "pip", (), False, None),
    ("blackwell-xla-ptx-isa", "2.21.0", ("12.0",), "pip", (), True, None),
    ("blackwell-xla-ptx-isa", "2.17.1", ("12.0",), "pip", (), False, None),
    ("cudnn911-drops-pre-turing", "2.21.0", ("6.0",), "pip", ("nvidia-cudnn-cu12==9.28.0.42",), True,
     "nvidia-cudnn-cu12==9.10.2.21"),
    ("cudnn911-drops-pre-turing", "2.21.0", ("6.0",), "pip", (CUDNN_93,), False, None),
    ("cudnn911-drops-pre-turing", "2.19.1", ("7.0",), "pip", ("nvidia-cudnn-cu12==9.28.0.42",), False, None),
    ("tf2161-missing-runpath", "2.16.1", ("8.0",), "pip", (), True, None),
    ("tf2161-missing-runpath", "2.16.2", ("8.0",), "pip", (), False, None),
    ("xla-ptxas-12-3-103", "2.16.1", (), "pip", ("nvidia-cuda-nvcc-cu12==12.3.103",), True,
     "nvidia-cuda-nvcc-cu12==12.3.107"),
    ("xla-ptxas-12-3-103", "2.16.1", (), "pip", ("nvidia-cuda-nvcc-cu12==12.3.107",), False, None),
    ("conda-tf2191-cuda129", "2.19.1", ("8.0",), "conda", ("cuda-version=12.9",), True, "cuda-version=12.8"),
    ("conda-tf2191-cuda129", "2.19.1", ("8.0",), "conda", ("cuda-version=12.8",), False, None),
    ("conda-tf2191-cuda129", "2.19.1", ("8.0",), "pip", ("cuda-version=12.9",), False, None),
]


def test_every_entry_is_in_the_table(matrix) -> None:
    assert {i.id for i in matrix.known_issues} == {row[0] for row in TABLE}


@pytest.mark.parametrize("ident, tensorflow, ccs, origin, lines, applies, pinned", TABLE,
                         ids=[f"{r[0]}-{r[1]}-{'+'.join(r[2]) or 'any'}-{r[3]}-{'yes' if r[5] else 'no'}" for r in TABLE])
def test_known_issue(matrix, ident, tensorflow, ccs, origin, lines, applies, pinned) -> None:
    issue = next(i for i in matrix.known_issues if i.id == ident)
    requirements = tuple(l for l in lines if "==" in l)
    conda = tuple(l for l in lines if "==" not in l)
    found = [a for a in K.apply(matrix, tensorflow, host(*ccs), "linux-64", origin, requirements, conda)
             if a.issue.id == ident]
    assert bool(found) == applies
    if not found:
        return
    [applied] = found
    assert ident in applied.message and issue.sources[0] in applied.message
    after = applied.requirements + applied.conda_packages
    if pinned is None:
        assert after == requirements + conda
    else:
        assert pinned in after and not set(lines) & set(after)
        assert "Remedy applied" in applied.message


def test_every_entry_names_its_source_its_check_and_a_signature(matrix) -> None:
    from gpuready.model.signatures import load_signatures

    known = {s.id for s in load_signatures().signatures}
    for issue in matrix.known_issues:
        assert issue.sources and all(s.startswith("https://") for s in issue.sources)
        assert issue.checked and issue.status in ("confirmed", "reported", "unverified")
        assert issue.symptom in known, f"{issue.id}: no signature {issue.symptom!r} in signatures.toml"


def plan_for(matrix, driver: str, gpu: str, tf: str | None = None):
    facts = apply_overrides(HostFacts(platform="linux-64", python="3.11", glibc="2.36"), matrix, driver=driver, gpu=gpu)
    return make_plan(facts, matrix, Constraints(tf=parse_tf_spec(tf) if tf else None))


def test_the_planner_applies_the_pin_and_reports_it(matrix) -> None:
    plan = plan_for(matrix, "560.35.03", "7.5")
    assert "nvidia-cudnn-cu12==9.24.0.43" in plan.requirements and CUDNN_93 not in plan.requirements
    assert plan.cudnn == "9.24"
    [issue] = [w for w in plan.warnings if w.code == "known-issue"]
    assert "tf221-cudnn-autotuner" in issue.message


def test_a_plan_the_issue_does_not_concern_is_left_alone(matrix) -> None:
    plan = plan_for(matrix, "560.35.03", "8.0", tf="2.20")
    assert CUDNN_93 in plan.requirements and not [w for w in plan.warnings if w.code == "known-issue"]


def test_an_env_remedy_reaches_the_plan(matrix) -> None:
    from dataclasses import replace

    from gpuready.model.matrix import Remedy

    issue = next(i for i in matrix.known_issues if i.id == "tf2161-missing-runpath")
    env_issue = replace(issue, remedy=Remedy("env", name="TF_EXAMPLE", value="1"))
    patched = replace(matrix, known_issues=(env_issue,))
    plan = plan_for(patched, "560.35.03", "8.0", tf="==2.16.1")
    assert plan.environment == {"TF_EXAMPLE": "1"}
    assert any("activation sets TF_EXAMPLE=1" in w.message for w in plan.warnings)


@pytest.mark.parametrize("line, pinned", [
    ("nvidia-cudnn-cu12==9.3.0.75", {"nvidia-cudnn-cu12": "9.3.0.75"}),
    ("tensorflow[and-cuda]==2.21.0", {"tensorflow": "2.21.0"}),
    ("cuda-version=12.8", {"cuda-version": "12.8"}),
    ("tensorflow=2.19.1=cuda*", {"tensorflow": "2.19.1"}),
    ("python=3.11", {"python": "3.11"}),
    ("pip", {}),
    ("numpy>=2", {}),
])
def test_pinned_versions(line, pinned) -> None:
    assert K.pinned_versions([line]) == pinned


# --------------------------------------------------------------------------- doctor names them


@pytest.mark.parametrize("ident, tensorflow, ccs, origin, lines, applies, pinned", TABLE)
def test_a_diagnosis_names_the_issue_exactly_where_it_applies(matrix, ident, tensorflow, ccs, origin, lines,
                                                              applies, pinned) -> None:
    """The same table from the other side: a failure with the issue's symptom, in an environment
    with these facts, is named as the issue exactly when the issue applies to them."""
    from gpuready.model.certificate import PROBLEM, Finding

    issue = next(i for i in matrix.known_issues if i.id == ident)
    pins = K.pinned_versions(lines)
    if not all(name in pins for name in issue.packages):
        pytest.skip("a package the issue names is not installed in this row")
    context = K.Context(tensorflow=tensorflow, compute_capabilities=ccs, packages=tuple(pins.items()),
                        platform="linux-64", flavor=origin)
    found = Finding(id=issue.symptom, title="t", severity=PROBLEM, cause="c", fix="f")
    named = K.name_known_issues([found], matrix, context)[0]
    candidates = [i.id for i in K.candidates(matrix, issue.symptom, context)]
    assert (ident in candidates) == applies
    if applies:
        assert named.known_issue == candidates[0] and ident in (named.note or "") + named.known_issue
        assert issue.sources[0] in named.note or named.known_issue != ident


def test_facts_of_a_log_narrow_the_candidates(matrix) -> None:
    text = ("I0000 cuda_dnn.cc:529] Loaded cuDNN version 90300\n"
            "Created device /job:localhost/replica:0/task:0/device:GPU:0 with 14000 MB memory: -> device: 0, "
            "name: Tesla T4, pci bus id: 0000:00:04.0, compute capability: 7.5\n")
    context = K.context_of_log(text)
    assert context.compute_capabilities == ("7.5",)
    assert dict(context.packages) == {"nvidia-cudnn-cu12": "9.3.0"}
    assert [i.id for i in K.candidates(matrix, "cudnn-autotuner-no-config", context)] == ["tf221-cudnn-autotuner"]
    on_pascal = K.context_of_log(text.replace("compute capability: 7.5", "compute capability: 6.1"))
    assert [i.id for i in K.candidates(matrix, "cudnn-autotuner-no-config", on_pascal)] == \
        ["tf221-autotuner-pre-turing"]
    fixed = K.context_of_log(text.replace("90300", "92400"))
    assert K.candidates(matrix, "cudnn-autotuner-no-config", fixed) == []


def test_doctor_names_the_known_issue_of_a_real_log(tmp_path) -> None:
    """tf-logs 021 (calad0i/HGQ2 issue 14): the autotuner failure is the tf221-cudnn-autotuner issue."""
    import json
    import tomllib

    from .conftest import ROOT, run_cli

    fixture = tomllib.loads((ROOT / "tests/data/corpus/tf-logs/021-autotuner-no-config-hgq2-tf221.toml")
                            .read_text(encoding="utf-8"))
    log = tmp_path / "fit.log"
    log.write_text(fixture["log"], encoding="utf-8")
    out = run_cli("doctor", "--log", str(log), "--json")
    assert out.returncode == 1, out.stderr
    first = json.loads(out.stdout)["diagnosis"][0]
    assert (first["id"], first["known_issue"]) == ("cudnn-autotuner-no-config", "tf221-cudnn-autotuner")
    assert "nvidia-cudnn-cu12==9.24.0.43" in first["note"]
    human = run_cli("doctor", "--log", str(log))
    assert "Known issue tf221-cudnn-autotuner" in human.stdout
