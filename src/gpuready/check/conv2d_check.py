#!/usr/bin/env python
"""gpuready's Conv2D training check: proves, level by level, that TensorFlow uses the GPU.

Run by path with the Python of the environment under test (it cannot import gpuready and
needs only what that environment has: TensorFlow, Keras, numpy):

    python conv2d_check.py --level 2 --log check.log [--expect-json '{"gpus": 1, ...}']
                           [--progress progress.jsonl]

It prints one JSON document on stdout and nothing else: everything else written to stdout or
stderr, TensorFlow's own C++ log included, goes to the --log file. --progress receives one JSON
line per event (a level starting, a check starting, a check's result), so that the caller can
enforce a time limit per level and keep what was done when the process has to be killed.

Levels (PRODUCT.md, "Certification levels"; level 0 is done by gpuready from outside):
  1 smoke: TensorFlow imports; its build info matches the plan; it lists every GPU; memory
    growth is set before first use; a matmul and a convolution on each GPU agree with the CPU.
  2 train: the Conv2D model (Conv2D -> MaxPooling2D -> Flatten -> Dense softmax; adam; sparse
    categorical cross-entropy) trains through tf.data (shuffle, batch, prefetch AUTOTUNE) on
    learnable synthetic data until the loss falls and accuracy passes the bar; its variables and
    ops are on the GPU; a mixed_float16 run where every GPU has compute capability >= 7.0; an
    XLA (jit_compile=True) run; GPU vs CPU images per second.
  3 multi-GPU: the same training under tf.distribute.MirroredStrategy across all GPUs.

The decisions that depend on the GPUs (what to run, what placement is right) are plain
functions of device lists, so they can be tested on machines without a GPU.
Compatible with Python 3.8+ and TensorFlow 2.12+ (Keras 2 and Keras 3).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import traceback

CHECK_NAME = "gpuready-conv2d-check"
CHECK_VERSION = 1

SEED = 1234
IMAGE_SHAPE = (28, 28, 1)
CLASSES = 10
TRAIN_IMAGES = 4096
EVAL_IMAGES = 1024
BATCH = 128
EPOCHS = 3  # the first is warm-up for the throughput figure
SHORT_EPOCHS = 2  # mixed precision, XLA, CPU comparison, multi-GPU
ACCURACY_BAR = 0.90
LOSS_FALL = 0.5  # the final loss must be below this fraction of the untrained loss
OPS_RTOL = 1e-2  # GPU vs CPU relative error (TF32 matmuls on Ampere+ are ~1e-3)
MIXED_PRECISION_MIN_CC = (7, 0)

PASS, FAIL, SKIP, WARN = "pass", "fail", "skip", "warn"
NO_GPU = "no GPU"

FACT_PREFIX = "[gpuready-check]"


# ----------------------------------------------------------------------------- pure logic
# Plain functions of device strings and lists: no TensorFlow, no numpy.


def parse_device(name):
    """'/job:localhost/replica:0/task:0/device:GPU:1', '/physical_device:GPU:1', 'GPU:1' ->
    ('GPU', 1); an empty or unknown string -> (None, None)."""
    match = re.search(r"(?:device:)?([A-Za-z_]+):(\d+)\s*$", name or "")
    if not match:
        return None, None
    return match.group(1).upper(), int(match.group(2))


def parse_cc(value):
    """(8, 6), '8.6', [8, 6] -> (8, 6); None or garbage -> None."""
    if value is None:
        return None
    if isinstance(value, str):
        parts = value.split(".")
    else:
        parts = list(value)
    try:
        return int(parts[0]), int(parts[1])
    except (ValueError, IndexError, TypeError):
        return None


def cc_text(cc):
    return None if cc is None else "%d.%d" % tuple(cc)


def gpu_label(gpu):
    name = gpu.get("device_name") or gpu.get("name") or "GPU"
    return "GPU %s (%s)" % (gpu.get("index"), name)


def mixed_precision_decision(gpus):
    """Whether to run mixed_float16: every GPU must have compute capability >= 7.0.

    gpus: [{"index": 0, "device_name": "...", "compute_capability": "8.0" or None}, ...].
    Returns (run, reason_if_not)."""
    if not gpus:
        return False, NO_GPU
    for gpu in gpus:
        cc = parse_cc(gpu.get("compute_capability"))
        if cc is None:
            return False, "%s: compute capability unknown" % gpu_label(gpu)
        if cc < MIXED_PRECISION_MIN_CC:
            return False, "%s has compute capability %s < %s (no fast float16)" % (
                gpu_label(gpu), cc_text(cc), cc_text(MIXED_PRECISION_MIN_CC))
    return True, None


def multi_gpu_decision(gpus):
    """Whether to run MirroredStrategy: it needs two or more GPUs. Returns (run, reason_if_not)."""
    if not gpus:
        return False, NO_GPU
    if len(gpus) < 2:
        return False, "only one GPU (MirroredStrategy needs two or more)"
    return True, None


def gpu_count_verdict(listed, expected, expected_reason=None):
    """TensorFlow's GPU count against what the host has (None: unknown).

    Returns (status, reason)."""
    if expected is None:
        return (SKIP, NO_GPU) if listed == 0 else (PASS, None)
    if expected == 0:
        if listed == 0:
            return SKIP, expected_reason or NO_GPU
        return WARN, "TensorFlow lists %d GPU(s) but none was expected" % listed
    if listed == 0:
        return FAIL, "TensorFlow lists no GPU; the host has %d" % expected
    if listed < expected:
        return FAIL, "TensorFlow lists %d of the host's %d GPUs" % (listed, expected)
    if listed > expected:
        return WARN, "TensorFlow lists %d GPUs; the host was found to have %d" % (listed, expected)
    return PASS, None


def _major_minor(version):
    numbers = re.findall(r"\d+", str(version or ""))
    return tuple(int(n) for n in numbers[:2])


def build_info_problems(build, tf_version, expect):
    """What in TensorFlow's build info contradicts the plan (an empty list: nothing).

    build: tf.sysconfig.get_build_info() as a dict; expect: the --expect-json object
    (keys used: device, tensorflow, cuda, cudnn, gpus)."""
    problems = []
    cuda_build = bool(build.get("is_cuda_build"))
    if expect.get("tensorflow") and tf_version and tf_version.split("+")[0] != expect["tensorflow"]:
        problems.append("TensorFlow is %s; the plan says %s" % (tf_version, expect["tensorflow"]))
    device = expect.get("device")
    if not cuda_build:
        if device == "gpu":
            problems.append("TensorFlow is a CPU-only build (is_cuda_build False); the plan is for the GPU")
        elif device is None and expect.get("gpus"):
            problems.append("TensorFlow is a CPU-only build (is_cuda_build False) on a host with %d GPU(s)"
                            % expect["gpus"])
        return problems
    if device == "gpu":
        want, have = _major_minor(expect.get("cuda")), _major_minor(build.get("cuda_version"))
        if want and have and want != have:
            problems.append("TensorFlow was built with CUDA %s; the plan says %s"
                            % (build.get("cuda_version"), expect.get("cuda")))
        want, have = _major_minor(expect.get("cudnn"))[:1], _major_minor(build.get("cudnn_version"))[:1]
        if want and have and want != have:
            problems.append("TensorFlow was built with cuDNN %s; the plan says %s"
                            % (build.get("cudnn_version"), expect.get("cudnn")))
    return problems


def placement_problems(variable_devices, output_devices, want="GPU"):
    """Where the model's variables and the traced step's outputs were placed, against the
    device kind they must be on. Returns a list of problems (empty: all on `want`)."""
    problems = []
    if not variable_devices:
        problems.append("the model has no variables to check")
    off = sorted({d or "(unplaced)" for d in variable_devices if parse_device(d)[0] != want})
    if off:
        problems.append("%d of %d variables are not on a %s: %s" % (
            sum(1 for d in variable_devices if parse_device(d)[0] != want), len(variable_devices),
            want, ", ".join(off)))
    if not output_devices:
        problems.append("the traced step returned no tensors to check")
    off = sorted({d or "(unplaced)" for d in output_devices if parse_device(d)[0] != want})
    if off:
        problems.append("ops of the traced training step ran on %s, not a %s" % (", ".join(off), want))
    return problems


def mirrored_problems(replica_devices, gpu_count, kind="GPU"):
    """replica_devices: for each trainable variable, the devices of its per-replica copies.
    Every variable must have one copy on each of the GPUs 0..gpu_count-1."""
    problems = []
    want = set(range(gpu_count))
    if not replica_devices:
        return ["the model has no variables to check"]
    for i, devices in enumerate(replica_devices):
        parsed = [parse_device(d) for d in devices]
        have = {index for device_kind, index in parsed if device_kind == kind}
        if have != want or len(parsed) != gpu_count:
            problems.append("variable %d has copies on %s, expected one on each of %s %s" % (
                i, ", ".join(devices) or "no device", kind, ", ".join(str(g) for g in sorted(want))))
    return problems


def relative_error(max_abs_diff, scale):
    return float(max_abs_diff) / max(float(scale), 1e-12)


def images_per_second(epoch_seconds, images_per_epoch, warmup=1):
    """Steady-state throughput: the epochs after the warm-up ones."""
    timed = epoch_seconds[warmup:] or epoch_seconds
    total = sum(timed)
    if total <= 0:
        return None
    return images_per_epoch * len(timed) / total


# ----------------------------------------------------------------------------- recording


class Skip(Exception):
    def __init__(self, reason, details=None):
        super().__init__(reason)
        self.reason, self.details = reason, details or {}


class Fail(Exception):
    def __init__(self, reason, details=None):
        super().__init__(reason)
        self.reason, self.details = reason, details or {}


class Warn(Exception):
    """Raised by a check that completed with a reservation."""

    def __init__(self, reason, details=None):
        super().__init__(reason)
        self.reason, self.details = reason, details or {}


class Recorder:
    """Runs checks one by one: times them, turns exceptions into results, reports progress."""

    def __init__(self, progress_path=None):
        self.checks = []
        self.errors = []
        self._progress = open(progress_path, "a", encoding="utf-8") if progress_path else None

    def event(self, **data):
        if self._progress is None:
            return
        data["t"] = time.time()
        self._progress.write(json.dumps(data) + "\n")
        self._progress.flush()

    def level(self, level):
        self.event(event="level", level=level)
        fact("level %d" % level)

    def passed(self, name):
        return any(c["name"] == name and c["status"] in (PASS, WARN) for c in self.checks)

    def run(self, name, level, title, func, requires=()):
        """Run func() as the check `name`. func returns a details dict (pass) or raises
        Skip / Fail / Warn. A check whose requirement did not pass is skipped."""
        for needed in requires:
            if not self.passed(needed):
                return self._record(name, level, title, SKIP, 0.0,
                                    "needs '%s', which did not pass" % needed, {})
        self.event(event="start", name=name, level=level)
        fact("check %s: start" % name)
        started = time.perf_counter()
        status, reason, details = PASS, None, {}
        try:
            details = func() or {}
        except Skip as exc:
            status, reason, details = SKIP, exc.reason, exc.details
        except Warn as exc:
            status, reason, details = WARN, exc.reason, exc.details
        except Fail as exc:
            status, reason, details = FAIL, exc.reason, exc.details
        except BaseException as exc:  # noqa: BLE001 - a check must never crash the check
            if isinstance(exc, KeyboardInterrupt):
                raise
            status, reason = FAIL, error_line(exc)
            text = traceback.format_exc()
            self.errors.append({"check": name, "error": reason, "traceback": text})
            sys.stderr.write(text)
        seconds = time.perf_counter() - started
        fact("check %s: %s%s" % (name, status, (" (%s)" % reason) if reason else ""))
        return self._record(name, level, title, status, seconds, reason, details)

    def _record(self, name, level, title, status, seconds, reason, details):
        check = {"name": name, "level": level, "title": title, "status": status,
                 "seconds": round(seconds, 3), "reason": reason, "details": details}
        self.checks.append(check)
        self.event(event="check", check=check)
        return check


def error_line(exc):
    text = str(exc).strip().splitlines()
    first = next((line for line in text if line.strip()), "")
    return ("%s: %s" % (type(exc).__name__, first[:500])) if first else type(exc).__name__


def fact(text):
    """A fact line in the log, for the diagnosis and for people reading the log."""
    sys.stderr.write("%s %s\n" % (FACT_PREFIX, text))
    sys.stderr.flush()


# ----------------------------------------------------------------------------- the check


class Conv2DCheck:
    """The TensorFlow side. One instance per run; state flows from check to check."""

    def __init__(self, recorder, expect, simulate_gpus=0):
        self.rec = recorder
        self.expect = expect
        # Tests on machines without a GPU: split the CPU into N logical devices and treat them
        # as the GPUs, so that the per-GPU code paths run. Never used by gpuready certify.
        self.simulate = simulate_gpus
        self.kind = "CPU" if simulate_gpus else "GPU"
        self.tf = None
        self.np = None
        self.keras = None
        self.gpus = []  # [{"index", "name", "device_name", "compute_capability"}]
        self._physical = []  # TensorFlow's PhysicalDevice objects of the GPUs
        self.build = {}
        self.tensorflow = {}
        self.data = None
        self.model = None
        self.train_details = {}
        self.throughput = {"gpu_images_per_second": None, "cpu_images_per_second": None,
                           "ratio": None, "batch_size": BATCH, "image_shape": list(IMAGE_SHAPE),
                           "images_per_epoch": TRAIN_IMAGES}

    # ------------------------------------------------------------------ level 1

    def level1(self):
        rec = self.rec
        rec.level(1)
        rec.run("import", 1, "TensorFlow imports", self.check_import)
        rec.run("build-info", 1, "build info (CUDA, cuDNN, is_cuda_build) matches the plan",
                self.check_build_info, requires=("import",))
        rec.run("gpus-visible", 1, "GPUs listed by tf.config.list_physical_devices('GPU')",
                self.check_gpus_visible, requires=("import",))
        rec.run("memory-growth", 1, "memory growth set on every GPU before first use",
                self.check_memory_growth, requires=("import",))
        rec.run("gpu-ops", 1, "a matmul and a convolution on each GPU agree with the CPU",
                self.check_gpu_ops, requires=("import",))

    def check_import(self):
        started = time.perf_counter()
        import tensorflow as tf  # first: when it is missing, that is the error to report
        import numpy as np

        self.np, self.tf = np, tf
        self.keras = tf.keras
        seconds = time.perf_counter() - started
        keras_version = getattr(self.keras, "__version__", None)
        try:
            import keras as keras_module
            keras_version = getattr(keras_module, "__version__", keras_version)
        except ImportError:
            pass
        self.tensorflow = {"version": tf.__version__, "keras": keras_version,
                           "numpy": np.__version__, "path": os.path.dirname(tf.__file__)}
        fact("tensorflow %s, keras %s, numpy %s" % (tf.__version__, keras_version, np.__version__))
        return {"version": tf.__version__, "keras": keras_version, "numpy": np.__version__,
                "import_seconds": round(seconds, 3)}

    def check_build_info(self):
        tf = self.tf
        try:
            build = dict(tf.sysconfig.get_build_info())
        except Exception as exc:  # very old or unusual builds
            build = {"error": error_line(exc)}
        build["is_built_with_cuda"] = bool(tf.test.is_built_with_cuda())
        build.setdefault("is_cuda_build", build["is_built_with_cuda"])
        self.build = _jsonable(build)
        self.tensorflow["build"] = self.build
        fact("tf.test.is_built_with_cuda() = %s" % build["is_built_with_cuda"])
        fact("tf.sysconfig.get_build_info() = %s" % json.dumps(self.build, sort_keys=True))
        problems = build_info_problems(self.build, tf.__version__, self.expect)
        if problems:
            raise Fail("; ".join(problems), self.build)
        return self.build

    def check_gpus_visible(self):
        tf = self.tf
        physical = tf.config.list_physical_devices("GPU")
        fact("tf.config.list_physical_devices('GPU') = %r" % ([d.name for d in physical],))
        # Names and compute capabilities come after memory growth is set (check_memory_growth):
        # nothing may touch a GPU before that.
        gpus = [{"index": parse_device(d.name)[1], "name": d.name, "device_name": None,
                 "compute_capability": None} for d in physical]
        if self.simulate:
            physical = []
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(self.simulate)])
            gpus = [{"index": i, "name": "/device:CPU:%d" % i, "device_name": "simulated GPU",
                     "compute_capability": self.expect.get("simulated_cc", "8.0")}
                    for i in range(self.simulate)]
            fact("simulating %d GPUs with logical CPU devices" % self.simulate)
        self.gpus = gpus
        self._physical = physical
        status, reason = gpu_count_verdict(len(gpus), self.expect.get("gpus"),
                                           self.expect.get("no_gpu_reason"))
        details = {"gpus": gpus, "expected": self.expect.get("gpus")}
        if status == FAIL:
            raise Fail(reason, details)
        if status == SKIP:
            raise Skip(reason, details)
        if status == WARN:
            raise Warn(reason, details)
        return details

    def check_memory_growth(self):
        tf = self.tf
        if not self.gpus:
            raise Skip(NO_GPU)
        if self.simulate:
            return {"simulated": True}
        try:
            for device in self._physical:
                tf.config.experimental.set_memory_growth(device, True)
        finally:
            self.describe_gpus()
        states = {d.name: bool(tf.config.experimental.get_memory_growth(d)) for d in self._physical}
        if not all(states.values()):
            raise Fail("memory growth did not stay set on %s"
                       % ", ".join(n for n, on in states.items() if not on), states)
        return {"memory_growth": states}

    def describe_gpus(self):
        """Each GPU's name and compute capability, as TensorFlow reports them."""
        for gpu, device in zip(self.gpus, self._physical):
            try:
                details = self.tf.config.experimental.get_device_details(device) or {}
            except Exception:  # noqa: BLE001 - details are a bonus
                details = {}
            gpu["device_name"] = details.get("device_name")
            gpu["compute_capability"] = cc_text(parse_cc(details.get("compute_capability")))
            fact("%s: %s, compute capability %s" % (device.name, gpu["device_name"],
                                                    gpu["compute_capability"]))

    def check_gpu_ops(self):
        tf, np = self.tf, self.np
        if not self.gpus:
            raise Skip(NO_GPU)
        rng = np.random.default_rng(SEED)
        a = rng.uniform(-1, 1, (256, 256)).astype("float32")
        b = rng.uniform(-1, 1, (256, 256)).astype("float32")
        images = rng.uniform(-1, 1, (8, 32, 32, 3)).astype("float32")
        kernel = rng.uniform(-1, 1, (3, 3, 3, 16)).astype("float32")
        with tf.device("/CPU:0"):
            cpu_mm = tf.matmul(a, b).numpy()
            cpu_conv = tf.nn.conv2d(images, kernel, strides=1, padding="SAME").numpy()
        results, problems = [], []
        for gpu in self.gpus:
            where = "/%s:%d" % (self.kind, gpu["index"])
            with tf.device(where):
                mm = tf.matmul(a, b)
                conv = tf.nn.conv2d(images, kernel, strides=1, padding="SAME")
            entry = {"gpu": gpu["index"], "matmul_device": mm.device, "conv_device": conv.device,
                     "matmul_rel_error": relative_error(np.max(np.abs(mm.numpy() - cpu_mm)),
                                                        np.max(np.abs(cpu_mm))),
                     "conv_rel_error": relative_error(np.max(np.abs(conv.numpy() - cpu_conv)),
                                                      np.max(np.abs(cpu_conv)))}
            results.append(entry)
            for op in ("matmul", "conv"):
                if parse_device(entry[op + "_device"]) != (self.kind, gpu["index"]):
                    problems.append("%s for %s ran on %s" % (op, where, entry[op + "_device"]))
                if not entry[op + "_rel_error"] <= OPS_RTOL:
                    problems.append("%s on %s differs from the CPU (relative error %.3g > %g)"
                                    % (op, where, entry[op + "_rel_error"], OPS_RTOL))
        if problems:
            raise Fail("; ".join(problems), {"results": results})
        return {"results": results, "tolerance": OPS_RTOL}

    # ------------------------------------------------------------------ level 2

    def level2(self):
        rec = self.rec
        rec.level(2)
        rec.run("train", 2, "Conv2D trains through tf.data (shuffle, batch, prefetch AUTOTUNE): "
                "loss falls, accuracy >= %.2f" % ACCURACY_BAR, self.check_train, requires=("import",))
        rec.run("placement", 2, "the model's variables and ops are on the GPU",
                self.check_placement, requires=("train",))
        rec.run("mixed-precision", 2, "mixed_float16 run (every GPU compute capability >= 7.0)",
                self.check_mixed_precision, requires=("train",))
        rec.run("xla", 2, "XLA run (jit_compile=True)", self.check_xla, requires=("train",))
        rec.run("throughput", 2, "GPU vs CPU images per second", self.check_throughput,
                requires=("train",))

    def make_data(self):
        """Learnable synthetic images: each class carries its own fixed pattern, plus noise."""
        if self.data is not None:
            return self.data
        np = self.np
        rng = np.random.default_rng(SEED)
        patterns = rng.uniform(0.0, 1.0, (CLASSES,) + IMAGE_SHAPE).astype("float32")

        def draw(count):
            labels = rng.integers(0, CLASSES, count)
            noise = rng.uniform(0.0, 1.0, (count,) + IMAGE_SHAPE).astype("float32")
            return (0.5 * patterns[labels] + 0.5 * noise).astype("float32"), labels.astype("int32")

        self.data = draw(TRAIN_IMAGES), draw(EVAL_IMAGES)
        return self.data

    def datasets(self):
        tf = self.tf
        (x, y), (ex, ey) = self.make_data()
        train = (tf.data.Dataset.from_tensor_slices((x, y))
                 .shuffle(TRAIN_IMAGES, seed=SEED, reshuffle_each_iteration=True)
                 .batch(BATCH)
                 .prefetch(tf.data.AUTOTUNE))
        evaluate = tf.data.Dataset.from_tensor_slices((ex, ey)).batch(BATCH).prefetch(tf.data.AUTOTUNE)
        return train, evaluate

    def build_model(self, jit_compile=False, mixed=False):
        keras = self.keras
        keras.utils.set_random_seed(SEED)
        model = keras.Sequential([
            keras.Input(shape=IMAGE_SHAPE),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            # Under mixed_float16 the softmax stays float32, as the mixed precision guide says.
            keras.layers.Dense(CLASSES, activation="softmax", dtype="float32" if mixed else None),
        ])
        kwargs = {"jit_compile": True} if jit_compile else {}
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"], **kwargs)
        return model

    def fit(self, model, epochs):
        """Train; return the figures that the checks judge."""
        train, evaluate = self.datasets()
        initial_loss, _ = model.evaluate(evaluate, verbose=0)
        times = []
        callback = _EpochTimer(self.keras, times)
        history = model.fit(train, epochs=epochs, verbose=0, shuffle=False, callbacks=[callback])
        final_loss, accuracy = model.evaluate(evaluate, verbose=0)
        return {
            "epochs": epochs,
            "initial_loss": round(float(initial_loss), 4),
            "final_loss": round(float(final_loss), 4),
            "accuracy": round(float(accuracy), 4),
            "train_loss": [round(float(v), 4) for v in history.history.get("loss", [])],
            "epoch_seconds": [round(t, 4) for t in times],
            "images_per_second": _round(images_per_second(times, TRAIN_IMAGES)),
        }

    def judge(self, result, what):
        problems = []
        if not result["final_loss"] < result["initial_loss"] * LOSS_FALL:
            problems.append("%s: loss did not fall enough (%.4g -> %.4g)"
                            % (what, result["initial_loss"], result["final_loss"]))
        if not result["accuracy"] >= ACCURACY_BAR:
            problems.append("%s: accuracy %.3f below the bar %.2f" % (what, result["accuracy"], ACCURACY_BAR))
        if problems:
            raise Fail("; ".join(problems), result)
        return result

    def check_train(self):
        model = self.build_model()
        result = self.fit(model, EPOCHS)
        self.model = model
        self.train_details = result
        result["device"] = self.kind if self.gpus else "CPU"
        result["images"] = TRAIN_IMAGES
        result["batch_size"] = BATCH
        return self.judge(result, "training")

    def check_placement(self):
        tf = self.tf
        model = self.model
        loss_fn = self.keras.losses.SparseCategoricalCrossentropy()
        (x, y), _ = self.make_data()

        @tf.function
        def step(images, labels):
            with tf.GradientTape() as tape:
                predictions = model(images, training=True)
                loss = loss_fn(labels, predictions)
            grads = tape.gradient(loss, model.trainable_variables)
            return [predictions, loss] + list(grads)

        outputs = step(x[:BATCH], y[:BATCH])
        variable_devices = [variable_device(v) for v in model.variables]
        output_devices = [t.device for t in outputs]
        details = {"variable_devices": sorted(set(variable_devices)),
                   "op_devices": sorted(set(output_devices))}
        if not self.gpus:
            raise Skip(NO_GPU, details)
        problems = placement_problems(variable_devices, output_devices, self.kind)
        if problems:
            raise Fail("; ".join(problems), details)
        return details

    def check_mixed_precision(self):
        run, reason = mixed_precision_decision(self.gpus)
        if not run:
            raise Skip(reason)
        policies = self.keras.mixed_precision
        policies.set_global_policy("mixed_float16")
        try:
            model = self.build_model(mixed=True)
            conv = model.layers[0]
            dtypes = {"compute": _dtype_name(getattr(conv, "compute_dtype", None)),
                      "variable": _dtype_name(getattr(conv, "variable_dtype", None)),
                      "policy": _dtype_name(getattr(policies.global_policy(), "name", None))}
            result = self.fit(model, SHORT_EPOCHS)
        finally:
            policies.set_global_policy("float32")
        result["dtypes"] = dtypes
        if dtypes["compute"] != "float16":
            raise Fail("the Conv2D layer computes in %s, not float16" % dtypes["compute"], result)
        return self.judge(result, "mixed_float16")

    def check_xla(self):
        model = self.build_model(jit_compile=True)
        result = self.fit(model, SHORT_EPOCHS)
        result["device"] = self.kind if self.gpus else "CPU"
        return self.judge(result, "XLA")

    def check_throughput(self):
        train_ips = self.train_details.get("images_per_second")
        if not self.gpus:
            self.throughput["cpu_images_per_second"] = train_ips
            raise Skip(NO_GPU, dict(self.throughput))
        tf = self.tf
        self.throughput["gpu_images_per_second"] = train_ips
        with tf.device("/CPU:0"):
            model = self.build_model()
            result = self.fit(model, SHORT_EPOCHS)
        cpu_ips = result["images_per_second"]
        self.throughput["cpu_images_per_second"] = cpu_ips
        if train_ips and cpu_ips:
            self.throughput["ratio"] = round(train_ips / cpu_ips, 2)
        details = dict(self.throughput, cpu_run_device=variable_device(model.variables[0]))
        if parse_device(details["cpu_run_device"])[0] != "CPU":
            raise Warn("the CPU comparison ran on %s, not the CPU" % details["cpu_run_device"], details)
        if self.throughput["ratio"] is not None and self.throughput["ratio"] < 1.0:
            raise Warn("the GPU trains slower than the CPU (ratio %.2f): is it shared or throttled?"
                       % self.throughput["ratio"], details)
        return details

    # ------------------------------------------------------------------ level 3

    def level3(self):
        self.rec.level(3)
        self.rec.run("multi-gpu", 3, "MirroredStrategy training across all GPUs",
                     self.check_multi_gpu, requires=("train",))

    def check_multi_gpu(self):
        run, reason = multi_gpu_decision(self.gpus)
        if not run:
            raise Skip(reason)
        tf = self.tf
        devices = ["/%s:%d" % (self.kind, g["index"]) for g in self.gpus]
        strategy = tf.distribute.MirroredStrategy(devices=devices)
        with strategy.scope():
            model = self.build_model()
        # The same global batch as the single-GPU run: the same steps, the same learning.
        result = self.fit(model, EPOCHS)
        result["replicas"] = int(strategy.num_replicas_in_sync)
        replica_devices = []
        for variable in model.trainable_variables:
            inner = getattr(variable, "value", variable)
            values = getattr(inner, "values", None) or getattr(variable, "values", None) or ()
            replica_devices.append([getattr(v, "device", "") for v in values])
        result["replica_devices"] = sorted({d for ds in replica_devices for d in ds})
        problems = mirrored_problems(replica_devices, len(devices), self.kind)
        if result["replicas"] != len(devices):
            problems.append("%d replicas in sync, expected %d" % (result["replicas"], len(devices)))
        if problems:
            raise Fail("; ".join(problems), result)
        return self.judge(result, "MirroredStrategy")


class _EpochTimer:
    """A Keras callback (built lazily: the class must exist before keras is imported)."""

    def __new__(cls, keras, times):
        class Timer(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self._start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                times.append(time.perf_counter() - self._start)

        return Timer()


def variable_device(variable):
    """The device of a tf.Variable (Keras 2) or a Keras 3 Variable (its .value is the tf.Variable)."""
    for obj in (variable, getattr(variable, "value", None)):
        device = getattr(obj, "device", None)
        if isinstance(device, str) and device:
            return device
    return ""


def _dtype_name(value):
    return getattr(value, "name", value) if value is not None else None


def _round(value, digits=1):
    return None if value is None else round(float(value), digits)


def _jsonable(data):
    return json.loads(json.dumps(data, default=str))


# ----------------------------------------------------------------------------- main


def run(level, expect, recorder, simulate_gpus=0):
    check = Conv2DCheck(recorder, expect, simulate_gpus)
    started = time.perf_counter()
    if level >= 1:
        check.level1()
    if level >= 2:
        check.level2()
    if level >= 3:
        check.level3()
    result = {
        "check": CHECK_NAME,
        "check_version": CHECK_VERSION,
        "level": level,
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "tensorflow": check.tensorflow,
        "gpus": check.gpus,
        "checks": recorder.checks,
        "throughput": check.throughput if level >= 2 else None,
        "errors": recorder.errors,
        "seconds": round(time.perf_counter() - started, 3),
    }
    if simulate_gpus:
        result["simulated_gpus"] = simulate_gpus
    return result


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--level", type=int, default=2, choices=(1, 2, 3))
    parser.add_argument("--log", required=True, help="file for TensorFlow's log and all other output")
    parser.add_argument("--expect-json", default="{}",
                        help="what the plan and the host promise: a JSON object (device, tensorflow, "
                        "cuda, cudnn, gpus, no_gpu_reason)")
    parser.add_argument("--progress", help="file for progress events (JSON lines)")
    parser.add_argument("--simulate-gpus", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    expect = json.loads(args.expect_json)
    if not isinstance(expect, dict):
        raise SystemExit("--expect-json must be a JSON object")
    # TensorFlow's C++ log at INFO: the diagnosis needs lines such as "Could not find cuda drivers".
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    # Everything but the final JSON document goes to the log: fd 1 and fd 2 both point there.
    sys.stdout.flush()
    sys.stderr.flush()
    real_stdout = os.dup(1)
    log = os.open(args.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    recorder = Recorder(args.progress)
    try:
        fact("%s %d: level %d, python %s, expect %s" % (CHECK_NAME, CHECK_VERSION, args.level,
                                                       sys.executable, json.dumps(expect)))
        result = run(args.level, expect, recorder, args.simulate_gpus)
        code = 0
    except BaseException as exc:  # noqa: BLE001 - report, never just die
        text = traceback.format_exc()
        sys.stderr.write(text)
        result = {"check": CHECK_NAME, "check_version": CHECK_VERSION, "level": args.level,
                  "checks": recorder.checks, "errors": recorder.errors + [
                      {"check": None, "error": error_line(exc), "traceback": text}]}
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    with os.fdopen(real_stdout, "w", encoding="utf-8") as out:
        out.write(json.dumps(result, default=str) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
