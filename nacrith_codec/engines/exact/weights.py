"""The bundled model's weights and vocabulary, read from its GGUF file without llama.cpp.

The GGUF tensors are dequantized exactly (float64 holds every Q4_1 value
``d * q + m`` and Q8_0 value ``d * q``), then requantized to the integers the
engine multiplies: 8-bit values per output row with one float64 scale per row.
Only IEEE-754 operations that round correctly are used, so every machine
derives the same integers from the same file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import shutil
import warnings

import numpy as np

from ...errors import CacheWarning, ModelNotFoundError
from ..model_file import fingerprint

#: The cache's layout: a new value whenever the integers derived from a file, or the way they
#: are stored, change (exact-2: a SHA-256 digest of every array in meta.json).
LAYOUT = "exact-2"

WEIGHT_LEVELS = 127  # weights are integers in [-127, 127] times a scale per output row
_BLOCK = 32  # values per quantization block of Q4_1 and Q8_0


@dataclasses.dataclass(frozen=True)
class Shape:
    layers: int
    embd: int
    ffn: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    rope_base: float
    eps: float
    context: int


def _f16(raw: np.ndarray) -> np.ndarray:
    return raw.copy().view(np.float16).astype(np.float64)  # exact


def _q4_1(data: np.ndarray, cols: int) -> np.ndarray:
    rows = data.shape[0]
    blocks = data.reshape(rows, cols // _BLOCK, 20)
    d, m = _f16(blocks[..., 0:2]), _f16(blocks[..., 2:4])
    nibbles = blocks[..., 4:]
    q = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=-1).astype(np.float64)
    return (d * q + m).reshape(rows, cols)


def _q8_0(data: np.ndarray, cols: int) -> np.ndarray:
    rows = data.shape[0]
    blocks = data.reshape(rows, cols // _BLOCK, 34)
    d = _f16(blocks[..., 0:2])
    q = blocks[..., 2:].copy().view(np.int8).astype(np.float64)
    return (d * q).reshape(rows, cols)


def requantize(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) float64 -> integers (cols, rows) as float32, and a float64 scale per row."""
    top = np.max(np.abs(w), axis=1)
    scale = np.where(top > 0, top / WEIGHT_LEVELS, 1.0)
    q = np.clip(np.rint(w / scale[:, None]), -WEIGHT_LEVELS, WEIGHT_LEVELS)
    return np.ascontiguousarray(q.T, dtype=np.float32), scale


class GGUFWeights:
    """Hyperparameters, vocabulary and dequantized tensors of a LLaMA-architecture GGUF."""

    def __init__(self, path):
        import gguf

        self.path = str(path)
        try:
            reader = gguf.GGUFReader(self.path)
        except (OSError, ValueError) as exc:
            raise ModelNotFoundError(f"cannot read the GGUF file {self.path}: {exc}") from exc
        self._fields, self._tensors = reader.fields, {t.name: t for t in reader.tensors}
        arch = self.field("general.architecture")
        if arch != "llama":
            raise ModelNotFoundError(f"the portable engine runs LLaMA-architecture models; "
                                     f"{self.path} is {arch!r} (use engine='llama.cpp')")
        a = "llama."
        embd, heads = self.field(a + "embedding_length"), self.field(a + "attention.head_count")
        self.shape = Shape(
            layers=self.field(a + "block_count"), embd=embd, ffn=self.field(a + "feed_forward_length"),
            heads=heads, kv_heads=self.field(a + "attention.head_count_kv"), head_dim=embd // heads,
            vocab=len(self._fields["tokenizer.ggml.tokens"].data),
            rope_base=float(self.field(a + "rope.freq_base")),
            eps=float(self.field(a + "attention.layer_norm_rms_epsilon")),
            context=self.field(a + "context_length"))
        if self.field("tokenizer.ggml.model") != "gpt2":
            raise ModelNotFoundError(f"the portable engine reads byte-level BPE vocabularies; "
                                     f"{self.path} has {self.field('tokenizer.ggml.model')!r}")
        bos = self._fields.get("tokenizer.ggml.bos_token_id")
        self.bos = int(bos.contents()) if bos is not None else 0

    def field(self, name):
        if name not in self._fields:
            raise ModelNotFoundError(f"{self.path} has no {name} field")
        return self._fields[name].contents()

    def tensor(self, name: str) -> np.ndarray:
        """A weight as float64 (rows, cols), exactly its GGUF values."""
        t = self._tensors.get(name)
        if t is None:
            raise ModelNotFoundError(f"{self.path} has no tensor {name}")
        kind, cols = t.tensor_type.name, int(t.shape[0])
        data = np.asarray(t.data)
        if kind == "Q4_1":
            return _q4_1(data, cols)
        if kind == "Q8_0":
            return _q8_0(data, cols)
        if kind in ("F32", "F16"):
            return data.astype(np.float64).reshape(-1, cols) if data.ndim > 1 else data.astype(np.float64)
        raise ModelNotFoundError(f"the portable engine does not read {kind} tensors ({name})")

    def pieces(self) -> list[bytes]:
        """Bytes of every token as the decoder emits them (control tokens: b"")."""
        decode = _byte_decoder()
        tokens = self.field("tokenizer.ggml.tokens")
        types = self.field("tokenizer.ggml.token_type")
        out = []
        for text, kind in zip(tokens, types):
            if kind in (2, 3, 5):  # unknown, control, unused: no bytes
                out.append(b"")
            elif kind == 4:  # user-defined: the text itself
                out.append(text.encode("utf-8"))
            else:
                out.append(bytes(decode[ch] for ch in text))
        return out


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level BPE alphabet: the printable character standing for each byte."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


def _arrays(source: GGUFWeights) -> dict:
    """Every array the engine uses, derived from the file."""
    out = {}
    emb = source.tensor("token_embd.weight")
    out["embedding"] = emb.astype(np.float32)  # Q8_0 values: 18 significant bits, exact
    out["output.q"], out["output.scale"] = requantize(emb)
    for i in range(source.shape.layers):
        t = lambda name: source.tensor(f"blk.{i}.{name}.weight")
        parts = {"qkv": np.concatenate([t("attn_q"), t("attn_k"), t("attn_v")]),
                 "o": t("attn_output"),
                 "gate_up": np.concatenate([t("ffn_gate"), t("ffn_up")]), "down": t("ffn_down")}
        for name, w in parts.items():
            out[f"{i}.{name}.q"], out[f"{i}.{name}.scale"] = requantize(w)
        out[f"{i}.attn_norm"] = t("attn_norm").reshape(-1)
        out[f"{i}.ffn_norm"] = t("ffn_norm").reshape(-1)
    out["output_norm"] = source.tensor("output_norm.weight").reshape(-1)
    pieces = source.pieces()
    out["pieces"] = np.frombuffer(b"".join(pieces), dtype=np.uint8)
    out["piece_len"] = np.array([len(p) for p in pieces], dtype=np.int64)
    return out


def unpack_pieces(arrays: dict) -> list[bytes]:
    blob, ends = arrays["pieces"].tobytes(), np.cumsum(arrays["piece_len"]).tolist()
    return [blob[a:b] for a, b in zip([0] + ends[:-1], ends)]


def _cache_root() -> pathlib.Path:
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base) / "nacrith" / "exact"


def load(path) -> tuple[dict, dict]:
    """The engine's arrays for a model file and its metadata, memory-mapped from the cache
    (made on first use: about 5 s; processes then share the pages).  The cache is keyed by
    the file's SHA-256 and LAYOUT, and every array is checked against the SHA-256 digest
    written with it before this process uses it (0.5 s for the default model's 650 MB,
    which the first step reads anyway): a damaged cache would change the logits, and so
    write streams that decode nowhere else.  One that does not match is rebuilt from the
    model file, with a CacheWarning; the cache can be deleted at any time."""
    folder = _cache_root() / f"{fingerprint(path)[:32]}-{LAYOUT}"
    problem = None
    if os.path.lexists(folder):
        try:
            meta = json.loads((folder / "meta.json").read_text())
            arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r")
                      for name in meta["arrays"]}
            damaged = [name for name in meta["arrays"]
                       if _digest(arrays[name]) != meta["digests"][name]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problem = f"could not be read ({type(exc).__name__}: {exc})"
        else:
            if not damaged:
                return arrays, meta
            problem = (f"was damaged ({', '.join(damaged[:3])}{' ...' * (len(damaged) > 3)} "
                       "did not match the digests written with it)")
        warnings.warn(CacheWarning(f"the exact engine's cache {folder} {problem}: rebuilt "
                                   f"from {path}"), stacklevel=2)
    source = GGUFWeights(path)
    arrays = _arrays(source)
    meta = {"shape": dataclasses.asdict(source.shape), "bos": source.bos, "arrays": sorted(arrays),
            "digests": {name: _digest(array) for name, array in arrays.items()}}
    tmp = folder.with_name(f"{folder.name}.{os.getpid()}.tmp")
    aside = folder.with_name(f"{folder.name}.{os.getpid()}.damaged")
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        for name, array in arrays.items():
            np.save(tmp / f"{name}.npy", array)
        (tmp / "meta.json").write_text(json.dumps(meta))
        if problem is not None:  # a folder cannot replace a full one: move the old aside
            os.replace(folder, aside)  # (processes that mapped its files keep them)
        os.replace(tmp, folder)
    except OSError:
        pass  # a read-only or full disk: recompute next time; another process may have won
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(aside, ignore_errors=True)
    return arrays, meta


def _digest(array: np.ndarray) -> str:
    """SHA-256 of an array's bytes (C order)."""
    return hashlib.sha256(memoryview(np.ascontiguousarray(array)).cast("B")).hexdigest()


#: SmolLM2-135M's architecture, the bundled model's (REFERENCE: 30 blocks, 576, 1,536, 9/3 heads)
SMOLLM2 = Shape(layers=30, embd=576, ffn=1536, heads=9, kv_heads=3, head_dim=64, vocab=49152,
                rope_base=100000.0, eps=1e-5, context=8192)


def seeded(shape: Shape, seed: int = 0) -> tuple[dict, dict]:
    """Arrays and metadata of a network of ``shape`` with seeded random weights of the
    kinds a model file gives (8-bit integers times float64 scales, Q8_0-like embeddings,
    norms near 1): exactness and speed do not depend on the weights' values, so checks
    of a device can run the real architecture without the model file.  Every token's
    piece is one byte (its number modulo 256)."""
    rng = np.random.default_rng(seed)
    out = {}
    emb = rng.integers(-127, 128, size=(shape.vocab, shape.embd)) * 2.0 ** -9  # d * q, d = 2**-9
    out["embedding"] = emb.astype(np.float32)
    out["output.q"], out["output.scale"] = requantize(emb)
    sizes = {"qkv": ((shape.heads + 2 * shape.kv_heads) * shape.head_dim, shape.embd),
             "o": (shape.embd, shape.heads * shape.head_dim),
             "gate_up": (2 * shape.ffn, shape.embd), "down": (shape.embd, shape.ffn)}
    for i in range(shape.layers):
        for name, (rows, cols) in sizes.items():  # gain about 1 per product
            q = rng.integers(-127, 128, size=(cols, rows)).astype(np.float32)
            out[f"{i}.{name}.q"] = q
            out[f"{i}.{name}.scale"] = rng.uniform(0.5, 1.5, rows) * 1.7 / (127 * cols ** 0.5)
        out[f"{i}.attn_norm"] = rng.uniform(0.5, 1.5, shape.embd)
        out[f"{i}.ffn_norm"] = rng.uniform(0.5, 1.5, shape.embd)
    out["output_norm"] = rng.uniform(0.5, 1.5, shape.embd)
    out["pieces"] = (np.arange(shape.vocab) % 256).astype(np.uint8)
    out["piece_len"] = np.ones(shape.vocab, dtype=np.int64)
    return out, {"shape": dataclasses.asdict(shape), "bos": 0, "arrays": sorted(out)}
