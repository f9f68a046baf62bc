"""A level-2 certificate of one GPU, as `certify` records it on a host with an A100.

No GPU exists on the machines these tests run on, so the checks the bundled check script would
record there are written out here, in its exact shapes (names, levels, details), with measured
figures that pass its bars. Tests only: the evidence checks must accept it, and refuse each
forgery made from it."""

from __future__ import annotations

import hashlib

from gpuready.certify import level0
from gpuready.model.certificate import PASS, Certificate, Check, Throughput
from gpuready.model.facts import Driver, Gpu, HostFacts
from gpuready.model.inputs import inputs_from_plan
from gpuready.model.matrix import load
from gpuready.model.planner import make_plan

from ..conftest import MATRIX_DIR

HOST = HostFacts(platform="linux-64", python="3.11", glibc="2.36",
                 driver=Driver("550.54.14", "12.4", "nvml"),
                 gpus=(Gpu(0, "NVIDIA A100-SXM4-80GB", "8.0", 81920, "GPU-aaaa"),))
PLAN = make_plan(HOST, load(MATRIX_DIR))
LOCK_SHA = hashlib.sha256(b"the lock").hexdigest()
DEVICE = "/job:localhost/replica:0/task:0/device:GPU:0"
PACKAGES = {"tensorflow": "2.21.0", "nvidia-cudnn-cu12": "9.24.0.43"}


def _check(name: str, level: int, **details) -> Check:
    return Check(name=name, level=level, status=PASS, title=name, seconds=1.0, details=details)


def _trained(initial: float = 2.3026, final: float = 0.21, accuracy: float = 0.97, **more) -> dict:
    return {"epochs": 3, "initial_loss": initial, "final_loss": final, "accuracy": accuracy,
            "train_loss": [1.2, 0.4, 0.2], "epoch_seconds": [1.5, 0.19, 0.2], "images_per_second": 21000.5, **more}


def gpu_certificate() -> Certificate:
    inputs = inputs_from_plan(PLAN)
    checks = [
        _check("python", 0, python="/envs/x/bin/python", version="3.11.9", packages=len(PACKAGES)),
        _check("files-match-record", 0, files=4210, distributions=2, mismatches=0, modified=[], missing=[],
               unreadable=[], without_record=[], left_to_conda=0),
        _check("packages-match-lock", 0, expected=2, installed=len(PACKAGES), missing=[], different=[], extra=[]),
        _check("lock-hash", 0, lock_file="/envs/x/gpuready/requirements.txt", sha256=LOCK_SHA),
        level0.check_driver(PLAN, HOST),
        level0.check_gpus(PLAN, HOST),
        _check("import", 1, version="2.21.0", keras="3.12.0", numpy="2.3.4", import_seconds=3.1),
        _check("build-info", 1, is_cuda_build=True, is_built_with_cuda=True,
               cuda_version=inputs.build_cuda or inputs.cuda, cudnn_version="9"),
        _check("gpus-visible", 1, gpus=[{"index": 0, "name": "/physical_device:GPU:0",
                                         "device_name": "NVIDIA A100-SXM4-80GB", "compute_capability": "8.0"}],
               expected=1),
        _check("memory-growth", 1, memory_growth={"/physical_device:GPU:0": True}),
        _check("gpu-ops", 1, results=[{"gpu": 0, "matmul_device": DEVICE, "conv_device": DEVICE,
                                        "matmul_rel_error": 0.0004, "conv_rel_error": 2e-06}], tolerance=0.01),
        _check("train", 2, **_trained(device="GPU", images=4096, batch_size=128)),
        _check("placement", 2, variable_devices=[DEVICE], op_devices=[DEVICE]),
        _check("mixed-precision", 2, **_trained(dtypes={"compute": "float16", "variable": "float32",
                                                        "policy": "mixed_float16"})),
        _check("xla", 2, **_trained(device="GPU")),
        _check("throughput", 2, gpu_images_per_second=21000.5, cpu_images_per_second=3500.0, ratio=6.0,
               batch_size=128, image_shape=[28, 28, 1], images_per_epoch=4096, cpu_run_device="/device:CPU:0"),
    ]
    return Certificate(
        status="certified", level=2, prefix="/envs/x", checks=tuple(checks), python="/envs/x/bin/python",
        env=PLAN.env, host=HOST, plan=PLAN, inputs=inputs, lock_sha256=LOCK_SHA, packages=PACKAGES,
        files_checked=4210, tensorflow={"version": "2.21.0", "keras": "3.12.0"},
        gpus=({"index": 0, "name": "/physical_device:GPU:0", "device_name": "NVIDIA A100-SXM4-80GB",
               "compute_capability": "8.0"},),
        throughput=Throughput(gpu_images_per_second=21000.5, cpu_images_per_second=3500.0, ratio=6.0,
                              batch_size=128, image_shape=[28, 28, 1]),
        created="2026-01-01T00:00:00+00:00", gpuready_version="tests")
