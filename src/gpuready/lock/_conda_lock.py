"""conda-lock's command line, as gpuready runs it: ``python -m gpuready.lock._conda_lock ARGS``.

One correction before it starts: conda-lock 4.0's pip solver knows only the manylinux levels
2_17, 2_18, 2_24 and 2_28 (a fixed list, `conda_lock.pypi_solver.MANYLINUX_TAGS`, with no
setting or hook to extend it), so it can never choose a manylinux_2_27 wheel (TensorFlow 2.21,
numpy 2.3). Every level from 2_17 to 2_40 is added, in this child process only: gpuready's own
process and any other user of conda-lock are not touched. The plan's `__glibc` virtual
package still caps the levels conda-lock accepts.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> None:
    import conda_lock.pypi_solver as pypi_solver

    pypi_solver.MANYLINUX_TAGS[:] = ["1", "2010", "2014"] + [f"_2_{minor}" for minor in range(17, 41)]
    from conda_lock.conda_lock import main as conda_lock_main

    sys.argv = ["conda-lock", *argv]
    conda_lock_main()


if __name__ == "__main__":
    main(sys.argv[1:])
