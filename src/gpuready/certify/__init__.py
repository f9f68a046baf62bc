"""Certification: proving, level by level, that TensorFlow trains on the GPU in an environment.

Owns: running the bundled check (`runner`; the scripts themselves live in `gpuready.check` and
run with only the environment's packages), the static level 0 (`level0`), certifying and
verifying (`service`), the diagnosis of a run (`diagnosis`), `doctor`, and JUnit output (`junit`).

May import: `gpuready.model`, `gpuready.env`, `gpuready.detect`, `gpuready.proc`,
`gpuready.files`, `gpuready.config`. Not the command line.
"""
