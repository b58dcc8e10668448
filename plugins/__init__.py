"""Adapters between host ecosystems and nacrith_codec (installed as nacrith_codec.plugins).

Each adapter is thin: it translates the host's interface into the public API
of nacrith_codec and holds no codec logic.
"""
