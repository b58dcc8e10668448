"""Exact numerics every stage shares: tables instead of transcendental functions.

tables.py computes exp2, exp, sigmoid, attention weights and RoPE rotations with
``decimal`` (software, the same everywhere) and checks them against digests written
in the code; the exact engine (engines/exact) and the ensemble's arithmetic
(predictions/arith.py) read them.
"""
