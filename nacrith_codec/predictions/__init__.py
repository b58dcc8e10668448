"""Logits -> predictions: the model's next-token logits refined by online predictors.

predictor.py combines them for every live stream of a step: history.py (the symbols so
far), ngram.py and match.py (sparse candidates), bias.py (a per-token offset), mixer.py
(learned weights in the log domain), cache.py (the model's hidden states of the block's
past, recalled by similarity), with arith.py's exact arithmetic.
"""

from .predictor import Predictor

__all__ = ["Predictor"]
