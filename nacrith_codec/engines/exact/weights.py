"""A model's weights and vocabulary, read from its GGUF file without llama.cpp.

The GGUF tensors are dequantized exactly (quants.py: float64 holds every value of
their block formats), then requantized to the integers the
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

from ... import cache
from ...errors import CacheWarning, ModelNotFoundError
from ...numerics import int8
from ..model_file import fingerprint
from . import quants

#: The cache's layout (named in cache.py, which lists the folders of other layouts): a new
#: value whenever the integers derived from a file, or the way they are stored, change
#: (exact-2: a SHA-256 digest of every array in meta.json; exact-3: the weight matrices as
#: int8, and beside each its 8-bit product's onnx graph, digests too).
LAYOUT = cache.EXACT_LAYOUT

WEIGHT_LEVELS = 127  # weights are integers in [-127, 127] times a scale per output row


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
    #: "llama" (SmolLM2) or "gemma3": the embedding scaled by sqrt(embd), RMS norms of each
    #: head's queries and keys and of each block's two outputs, GELU, NEOX rotation, and
    #: layers that attend to their last ``local_window`` positions only, all but every
    #: ``global_every``-th, rotating with ``local_rope_base``
    arch: str = "llama"
    local_window: int = 0
    global_every: int = 0
    local_rope_base: float = 0.0

    def local(self, layer: int) -> bool:
        """Whether ``layer`` attends to its last local_window positions only."""
        return self.local_window > 0 and (layer + 1) % self.global_every != 0

    def rope_base_of(self, layer: int) -> float:
        return self.local_rope_base if self.local(layer) else self.rope_base


#: What llama.cpp's Gemma 3 takes from its code, not the file: every sixth layer is global
#: and the local layers rotate with base 10,000.
GEMMA3_GLOBAL_EVERY, GEMMA3_LOCAL_ROPE_BASE = 6, 10000.0
#: Texts of user-defined tokens that llama.cpp makes control tokens (end of generation),
#: which decode to no bytes (Gemma 3's "</s>")
_END_TEXTS = ("</s>", "<end_of_turn>", "<|endoftext|>", "<|im_end|>", "<|eot_id|>", "<EOT>")


def requantize(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) float64 -> integers (cols, rows) as int8, and a float64 scale per row."""
    top = np.max(np.abs(w), axis=1)
    scale = np.where(top > 0, top / WEIGHT_LEVELS, 1.0)
    q = np.clip(np.rint(w / scale[:, None]), -WEIGHT_LEVELS, WEIGHT_LEVELS)
    return np.ascontiguousarray(q.T, dtype=np.int8), scale


class GGUFWeights:
    """Hyperparameters, vocabulary and dequantized tensors of a LLaMA or Gemma 3 GGUF."""

    def __init__(self, path):
        import gguf

        self.path = str(path)
        try:
            reader = gguf.GGUFReader(self.path)
        except (OSError, ValueError) as exc:
            raise ModelNotFoundError(f"cannot read the GGUF file {self.path}: {exc}") from exc
        self._fields, self._tensors = reader.fields, {t.name: t for t in reader.tensors}
        arch = self.field("general.architecture")
        if arch not in ("llama", "gemma3"):
            raise ModelNotFoundError(f"the portable engine runs LLaMA-architecture and Gemma 3 "
                                     f"models; {self.path} is {arch!r} (use engine='llama.cpp')")
        a = arch + "."
        embd, heads = self.field(a + "embedding_length"), self.field(a + "attention.head_count")
        local = dict(arch=arch)
        if arch == "gemma3":
            local.update(local_window=self.field(a + "attention.sliding_window"),
                         global_every=GEMMA3_GLOBAL_EVERY, local_rope_base=GEMMA3_LOCAL_ROPE_BASE)
        key_length = self._fields.get(a + "attention.key_length")
        self.shape = Shape(
            layers=self.field(a + "block_count"), embd=embd, ffn=self.field(a + "feed_forward_length"),
            heads=heads, kv_heads=self.field(a + "attention.head_count_kv"),
            head_dim=int(key_length.contents()) if key_length is not None else embd // heads,
            vocab=len(self._fields["tokenizer.ggml.tokens"].data),
            rope_base=float(self.field(a + "rope.freq_base")),
            eps=float(self.field(a + "attention.layer_norm_rms_epsilon")),
            context=self.field(a + "context_length"), **local)
        self.vocab_kind = self.field("tokenizer.ggml.model")
        if self.vocab_kind not in ("gpt2", "llama"):
            raise ModelNotFoundError(f"the portable engine reads byte-level BPE and SentencePiece "
                                     f"vocabularies; {self.path} has {self.vocab_kind!r}")
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
        if kind in quants.FORMATS:
            return quants.FORMATS[kind](data.reshape(-1, data.shape[-1]), cols)
        if kind in ("F32", "F16"):
            return data.astype(np.float64).reshape(-1, cols) if data.ndim > 1 else data.astype(np.float64)
        raise ModelNotFoundError(f"the portable engine does not read {kind} tensors ({name})")

    def pieces(self) -> list[bytes]:
        """Bytes of every token as llama.cpp's decoder emits them (control tokens: b"")."""
        decode = _byte_decoder()
        tokens = self.field("tokenizer.ggml.tokens")
        types = self.field("tokenizer.ggml.token_type")
        out = []
        for text, kind in zip(tokens, types):
            if kind in (2, 3, 5) or (kind == 4 and text in _END_TEXTS):  # no bytes
                out.append(b"")
            elif kind == 4:  # user-defined: the text itself
                out.append(text.encode("utf-8"))
            elif self.vocab_kind == "llama":  # SentencePiece: bytes <0xXX>, spaces as U+2581
                out.append(bytes([int(text[3:-1], 16)]) if kind == 6
                           else text.replace("\u2581", " ").encode("utf-8"))
            else:
                out.append(bytes(decode[ch] for ch in text))
        return out


#: Each layer's norm gains per architecture: the engine's name -> the GGUF tensor's
#: (blk.N.<name>.weight)
_LLAMA_NORMS = {"attn_norm": "attn_norm", "ffn_norm": "ffn_norm"}
NORMS = {"llama": _LLAMA_NORMS,
         "gemma3": {**_LLAMA_NORMS, "q_norm": "attn_q_norm", "k_norm": "attn_k_norm",
                    "post_attn_norm": "post_attention_norm", "post_ffn_norm": "post_ffw_norm"}}


def norms(shape: Shape) -> dict:
    """Each layer's norm gains for ``shape``'s architecture (engine name -> GGUF name)."""
    return NORMS[shape.arch]


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
        for name, tensor in norms(source.shape).items():
            out[f"{i}.{name}"] = t(tensor).reshape(-1)
    out["output_norm"] = source.tensor("output_norm.weight").reshape(-1)
    pieces = source.pieces()
    out["pieces"] = np.frombuffer(b"".join(pieces), dtype=np.uint8)
    out["piece_len"] = np.array([len(p) for p in pieces], dtype=np.int64)
    return out


def unpack_pieces(arrays: dict) -> list[bytes]:
    blob, ends = arrays["pieces"].tobytes(), np.cumsum(arrays["piece_len"]).tolist()
    return [blob[a:b] for a, b in zip([0] + ends[:-1], ends)]


def load(path) -> tuple[dict, dict]:
    """The engine's arrays for a model file and its metadata, memory-mapped from the cache
    (made on first use: about 8 s; processes then share the pages).  The cache is keyed by
    the file's SHA-256 and LAYOUT, and every array, and every 8-bit product's graph
    (``meta["graph_files"]``: the graph file of each weight matrix, int8.graph's), is
    checked against the SHA-256 digest written with it before this process uses it
    (0.25 s for the default model's 250 MB, which the first step reads anyway): a damaged
    cache would change the logits, and so write streams that decode nowhere else.  One
    that does not match is rebuilt from the model file, with a CacheWarning; the cache can
    be deleted at any time."""
    folder = cache.root() / "exact" / f"{fingerprint(path)[:32]}-{LAYOUT}"
    problem = None
    if os.path.lexists(folder):
        found = _read(folder)
        if not isinstance(found, str):
            return found
        problem = found
        warnings.warn(CacheWarning(f"the exact engine's cache {folder} {problem}: rebuilt "
                                   f"from {path}"), stacklevel=2)
    source = GGUFWeights(path)
    arrays = _arrays(source)
    meta = {"shape": dataclasses.asdict(source.shape), "bos": source.bos, "arrays": sorted(arrays),
            "digests": {name: _digest(array) for name, array in arrays.items()}}
    if _write(folder, arrays, meta, replace=problem is not None):
        found = _read(folder)
        if not isinstance(found, str):
            if problem is None:
                cache.announce(folder, f"the exact engine's integer weights of {pathlib.Path(path).name}")
            return found
    return arrays, meta  # held in memory: a read-only or full disk, or a lost race


def _read(folder: pathlib.Path) -> tuple[dict, dict] | str:
    """The cache's (arrays, meta), or what is wrong with it."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r")
                  for name in meta["arrays"]}
        files = {name: str(folder / f"{name}.onnx") for name in meta["graphs"]}
        damaged = [name for name in meta["arrays"]
                   if _digest(arrays[name]) != meta["digests"][name]]
        damaged += [f"{name}.onnx" for name, file in files.items()
                    if _digest(np.fromfile(file, np.uint8)) != meta["graphs"][name]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"could not be read ({type(exc).__name__}: {exc})"
    if damaged:
        return (f"was damaged ({', '.join(damaged[:3])}{' ...' * (len(damaged) > 3)} "
                "did not match the digests written with it)")
    return arrays, {**meta, "graph_files": files}


def _write(folder: pathlib.Path, arrays: dict, meta: dict, replace: bool) -> bool:
    """Write the cache (its arrays, the weight matrices' graphs where onnx imports, and
    meta.json with their digests) whole or not at all; whether it was written."""
    tmp = folder.with_name(f"{folder.name}.{os.getpid()}.tmp")
    aside = folder.with_name(f"{folder.name}.{os.getpid()}.damaged")
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        for name, array in arrays.items():
            np.save(tmp / f"{name}.npy", array)
        meta = {**meta, "graphs": _graphs(tmp, [n for n in arrays if n.endswith(".q")])}
        (tmp / "meta.json").write_text(json.dumps(meta))
        if replace:  # a folder cannot replace a full one: move the old aside
            os.replace(folder, aside)  # (processes that mapped its files keep them)
        os.replace(tmp, folder)
        return True
    except OSError:
        return False  # a read-only or full disk: recompute next time; another process may have won
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(aside, ignore_errors=True)


def _graphs(folder: pathlib.Path, names: list) -> dict:
    """Beside each weight matrix ``name``.npy in ``folder``, its 8-bit product's graph,
    reading the values from that file; {name: the graph's digest} ({} where onnx, which
    builds them, is not installed)."""
    try:
        digests = {}
        for name in names:
            q = np.load(folder / f"{name}.npy", mmap_mode="r")
            graph = int8.graph(*q.shape, location=f"{name}.npy", offset=q.offset)
            (folder / f"{name}.onnx").write_bytes(graph)
            digests[name] = _digest(np.frombuffer(graph, np.uint8))
        return digests
    except ImportError:
        return {}


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
            q = rng.integers(-127, 128, size=(cols, rows)).astype(np.int8)
            out[f"{i}.{name}.q"] = q
            out[f"{i}.{name}.scale"] = rng.uniform(0.5, 1.5, rows) * 1.7 / (127 * cols ** 0.5)
        for name in norms(shape):
            size = shape.head_dim if name in ("q_norm", "k_norm") else shape.embd
            out[f"{i}.{name}"] = rng.uniform(0.5, 1.5, size)
    out["output_norm"] = rng.uniform(0.5, 1.5, shape.embd)
    out["pieces"] = (np.arange(shape.vocab) % 256).astype(np.uint8)
    out["piece_len"] = np.ones(shape.vocab, dtype=np.int64)
    return out, {"shape": dataclasses.asdict(shape), "bos": 0, "arrays": sorted(out)}
