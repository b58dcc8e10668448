"""One block through every stage, and who codes the blocks.

schedule.py is the lockstep schedule of a block's streams (the one loop every coder and
measuring tool runs); block.py codes a block (segments, tokens, predictions, bits, and
its record); workers.py codes blocks here or in worker processes; memory.py bounds
what a stream's decoder allocates; stats.py the counts every report is made of.
"""
