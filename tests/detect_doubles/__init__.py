"""Test doubles for host detection: a fake NVML module and a fake `nvidia-smi` executable.

The development and CI machines have no GPU and no NVIDIA driver (no libnvidia-ml.so.1, no
nvidia-smi, no /proc/driver/nvidia), so the driver is played by these doubles, answering from
recorded outputs under `recorded/`. Those files follow the exact layout of real outputs of
the named drivers as published in NVIDIA's documentation and in public bug reports (the R470
`compute_cap` error, the WSL "CUDA Version: ERR!" banner); they were not captured on a GPU
machine, since none is available to this project's development. They live in tests/ only; the product uses the real pynvml
and the real nvidia-smi. `corpus.py` replays through them the real outputs users pasted into
public threads (tests/data/corpus/nvidia-smi).
"""
