"""Segments -> tokens: exact, lossless conversion between bytes and the model's symbols."""

from .tokenizer import Tokenizer

__all__ = ["Tokenizer"]
