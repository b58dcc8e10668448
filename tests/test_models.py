"""Named models: the bundled SmolLM2 and the optional Gemma 3 270M, found on disk and
chosen by name; a stream names its model, and a decoder given none takes it."""

import os

import numpy as np
import pytest

import nacrith_codec as nc
from nacrith_codec import container
from nacrith_codec.container.inspect import stream_info
from nacrith_codec.config import MODEL_ALONE
from nacrith_codec.engines import model_file
from nacrith_codec.errors import ModelMismatchError, ModelNotFoundError
from nacrith_codec.predictions import arith
from conftest import GEMMA, SMALL, needs_gemma


def test_unknown_name_lists_the_named_models():
    with pytest.raises(ModelNotFoundError, match="named models: smollm2-135m, gemma3-270m"):
        model_file.resolve_model_path("gemma-9000")


def test_the_default_is_the_named_default():
    path = model_file.resolve_model_path(model_file.DEFAULT_NAME)
    assert path == model_file.default_model_path()
    assert model_file.fingerprint(path) == model_file.MODELS[model_file.DEFAULT_NAME].sha256


def test_softmax_over_a_large_vocabulary_is_exact_in_any_order():
    """Gemma's 262,144 tokens: terms of 2**34, so the sum stays below 2**53 and its
    additions can come in any order (a 2**36 term would not)."""
    assert arith.exp_bits(49152) == 36 and arith.exp_bits(262144) == 34
    rng = np.random.default_rng(5)
    z = rng.normal(0, 4, (2, 262144)).astype(np.float32)
    order = rng.permutation(262144)
    a = arith.softmax(z.copy())
    b = arith.softmax(z[:, order].copy())
    assert np.array_equal(a[:, order], b)
    assert abs(float(a[0].astype(np.float64).sum()) - 1.0) < 1e-5


@pytest.fixture(scope="module")
def gemma(tmp_path_factory):
    return model_file.resolve_model_path(GEMMA)


@needs_gemma
def test_gemma_is_joined_once_and_is_the_published_file(gemma):
    assert gemma.name == "gemma-3-270m-q4_k_m.gguf"
    assert model_file.fingerprint(gemma) == model_file.MODELS[GEMMA].sha256
    assert model_file.resolve_model_path(GEMMA) == gemma  # found again, not joined again
    assert not [p for p in os.listdir(gemma.parent) if p.endswith(".part")]


@needs_gemma
def test_gemma_round_trip_and_the_decoder_takes_the_model_the_stream_names(english):
    data = english[:240]
    packed = nc.compress(data, model=GEMMA, **SMALL)
    assert packed != nc.compress(data, **SMALL)  # another model: other predictions
    assert nc.decompress(packed) == data  # no model given: the stream's
    assert nc.decompress(packed, model=GEMMA) == data
    header = container.parse_header(packed)[0]
    assert header.model_name == "" and header.config.cache_size  # named: found by its SHA-256
    assert stream_info(packed)["model"] == "gemma-3-270m-q4_k_m.gguf"


@needs_gemma
def test_a_gemma_stream_given_another_model_says_which_to_pass(english):
    packed = nc.compress(english[:80], model=GEMMA, **SMALL)
    with pytest.raises(ModelMismatchError, match="--model gemma3-270m"):
        nc.decompress(packed, model=model_file.DEFAULT_NAME)


@needs_gemma
def test_gemma_alone_round_trips(english):
    data = english[:160]
    alone = nc.compress(data, model=GEMMA, **SMALL, **MODEL_ALONE)
    assert nc.decompress(alone) == data
