"""The command line: Invoke tasks, the `gpuready` Program, everything rendered with rich.

Owns: the task functions (`detect`, `plan`, `lock`, `install`, `certify`, `setup`, `matrix`,
`cloud`), the namespace they form (`namespace.ns`, used by tasks.py and by the console command),
the `gpuready` Program (`program`), and the terminal output (`render`). Tasks are thin: they
validate every flag and setting, call the library, render its answer and choose the exit code.

The only room that imports `invoke` or `rich`. Text from outside (GPU names, paths, tool
output) is printed as data, never as markup.
"""
