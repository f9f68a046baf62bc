"""Environments: an installed prefix and everything gpuready keeps in and beside it.

Owns: the prefix layout and its records (`layout`), the install transaction — staging, swap,
per-prefix lock, leftovers, disk space (`transaction`) — the install itself (`install`), what
is installed and how it compares with the lock (`inventory`), and activation (`activation`).

May import: `gpuready.model`, `gpuready.lock` (the folder a lock lives in, the index settings),
`gpuready.proc`, `gpuready.files`, `gpuready.tools`, `gpuready.config`. Not the command line.
"""
