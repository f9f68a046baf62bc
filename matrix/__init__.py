"""The compatibility matrix as TOML data.

This folder is shipped inside the package as ``gpuready._matrix`` so that the
``gpuready`` console command works without a checkout; the loader lives in
``gpuready.matrix``.
"""
