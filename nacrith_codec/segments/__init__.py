"""Bytes -> segments: which bytes the model sees, and the classical codecs for the rest.

runs.py cuts a block into text regions and binary regions and text into runs the
tokenizer can take; classical.py names the coding method of every segment (the
model, or LZMA, Zstandard, PPMd, stored) and runs the classical ones.
"""
