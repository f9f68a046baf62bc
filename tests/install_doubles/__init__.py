"""Test doubles for `invoke install` / `invoke setup`: a uv that dies or stalls half-way, and
env folders locked (by the real uv) against the local wheel index of tests/lock_doubles.
Tests only: nothing here is part of the product."""
