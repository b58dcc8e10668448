"""Many blocks in one forward pass (pipeline/batch.py): the exact engine's ``workers``
are threads whose blocks share each step, and the bytes are those of one block at a
time."""

import threading
from dataclasses import replace

import numpy as np
import pytest

import nacrith_codec as nc
from nacrith_codec.engines import Engine
from nacrith_codec.engines.exact import context
from nacrith_codec.engines.model_file import resolve_model_path
from nacrith_codec.errors import CorruptError, MemoryLimitError
from nacrith_codec.pipeline.batch import SharedContext, Threads

from conftest import EXACT_SMALL, forge_first_block

#: blocks of about 60 tokens; the neural cache on (it reads each lane's hidden states)
BLOCKS = {**EXACT_SMALL, "block_size": 260}


@pytest.fixture(scope="module")
def exact():
    return Engine.get(resolve_model_path(), kind="exact")


@pytest.fixture(scope="module")
def blocks(alice):
    """Four blocks, and their stream written one block at a time."""
    data = alice[3000:4040]
    return data, nc.compress(data, **BLOCKS)


def test_blocks_sharing_forward_passes_write_the_bytes_of_one_at_a_time(blocks):
    data, alone = blocks
    # three at once: the encoder's blocks each prefill in a context of their own, the
    # decoder's share each step's forward pass (lanes)
    c = nc.NacrithCompressor(workers=3, content_size=len(data), **BLOCKS)
    together = c.compress(data) + c.flush()
    assert together == alone
    assert nc.decompress(together, workers=3) == data


def test_lanes_step_together_and_get_their_own_rows(exact, english):
    """Two blocks in two threads over one shared context: one forward pass per step for
    both, and each lane's logits and hidden states are those of a context of its own."""
    config = nc.CodecConfig(**{**BLOCKS, "streams": 2})
    tokens = exact.tokenizer.tokenize(english)[:24]
    shared = SharedContext(exact, config, None, lanes=2)
    own, both_in = {}, threading.Barrier(2)

    def run(lane_tokens, key):
        with shared.lane() as lane:
            both_in.wait()  # a lane that comes later joins at its first step
            lane.reset()
            out = []
            for t in lane_tokens:
                lane.push(np.array([t, t], dtype=np.int32))
                logits = lane.step([0, 1])
                out.append((logits.copy(), lane.hidden.copy()))
            own[key] = out
    threads = [threading.Thread(target=run, args=(tokens[k::2], k)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert shared.steps == 12  # not 24: the lanes' steps ran as one
    for key in (0, 1):
        ctx = context.Context(exact.model.network, 2, config.window, config.slide, config.sink)
        for t, (logits, hidden) in zip(tokens[key::2], own[key]):
            ctx.push(np.array([t, t], dtype=np.int32))
            assert ctx.step([0, 1]).tobytes() == logits.tobytes()
            assert ctx.hidden.tobytes() == hidden.tobytes()
    shared.close()


def test_a_block_that_fails_in_its_lane_does_not_stall_the_others(blocks):
    """A block whose payload was damaged (valid CRCs) fails with a CorruptError while the
    blocks beside it in the same passes keep going: no hang, no wrong bytes."""
    data, packed = blocks
    flip = lambda b: replace(b, payload=bytes([b.payload[0] ^ 0x55]) + b.payload[1:])
    with pytest.raises(CorruptError):
        nc.decompress(forge_first_block(packed, flip), workers=3)


def test_the_memory_limit_takes_threads_away_as_xz_does(exact):
    """memlimit bounds the process: where four blocks at once would not fit, as many as
    fit are coded at once; where one would not, MemoryLimitError before any allocation."""
    config = nc.CodecConfig(**BLOCKS)
    need = exact.check_memory(config, 0)
    runner = Threads(exact, config, 4, memlimit=int(2.5 * need))
    assert runner.workers == 2 and runner.shared.lanes == 2
    runner.close()
    with pytest.raises(MemoryLimitError, match="needs about"):
        Threads(exact, config, 4, memlimit=need - 1)
