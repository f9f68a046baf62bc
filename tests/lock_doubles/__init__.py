"""Test doubles for `invoke lock`: a local wheel index, a local conda channel, and a
conda executable built on py-rattler, so that uv and the real conda-lock run end to
end without the network. Tests only: nothing here is part of the product."""
