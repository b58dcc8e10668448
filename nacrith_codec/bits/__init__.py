"""Predictions -> frequencies -> bits: 24-bit integer models and the range coder."""

from .range_coder import SymbolDecoder, SymbolEncoder

__all__ = ["SymbolDecoder", "SymbolEncoder"]
