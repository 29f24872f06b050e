"""Latents and the rules for them: the batch type that travels between nodes as GAN_LATENT
and when two batches can be mixed (`batch`), seeded sampling (`sampling`), class weights
(`classes`), picking, joining and repeating (`batch_ops`), and the one text grammar for seed
lists, index lists and weighted class mixes (`grammar`). Nothing here knows a model family.
"""

from .batch import SPACES, LatentBatch, check_compatible
from .batch_ops import REPEAT_MODES, concat, pick, repeat
from .classes import MIX_MODES, class_rows, one_hot_weights
from .grammar import (
    MAX_LIST_ITEMS,
    MAX_TEXT_CHARS,
    Weighted,
    parse_indices,
    parse_int_list,
    parse_mix,
    parse_seeds,
)
from .sampling import MAX_SEED, SEED_MODES, seeded_normal

__all__ = [
    "MAX_LIST_ITEMS", "MAX_SEED", "MAX_TEXT_CHARS", "MIX_MODES", "REPEAT_MODES", "SEED_MODES",
    "SPACES", "LatentBatch", "Weighted", "check_compatible", "class_rows", "concat",
    "one_hot_weights", "parse_indices", "parse_int_list", "parse_mix", "parse_seeds", "pick",
    "repeat", "seeded_normal",
]
