"""gpuready: reproducible, proven TensorFlow GPU environments."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gpuready")
except PackageNotFoundError:  # running from a checkout without installing
    __version__ = "0.0.0+unknown"
