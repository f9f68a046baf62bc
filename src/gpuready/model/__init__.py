"""The model: gpuready's pure data and rules. No I/O beyond reading its own packaged data.

Owns: host facts (`facts`), the compatibility matrix and its validation (`matrix`), the plan
flags (`flags`), the plan and the planner (`plan`, `planner`), the lock inputs (`inputs`), the
records gpuready keeps on disk (`records`), the certificate (`certificate`) and the failure
signatures (`signatures`).

May import: the standard library, `packaging`, `pydantic`, and `gpuready.errors`. Nothing
here probes the machine, runs a program or writes a file; the other rooms do, with these types.
"""
