"""The one text grammar: seed lists, index lists and weighted class mixes, and its limits."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from helpers import tiny_dcgan

from gan_models import GanStudioError
from gan_models.commands import generate
from gan_models.latent import (
    MAX_LIST_ITEMS,
    MAX_SEED,
    MAX_TEXT_CHARS,
    class_rows,
    parse_indices,
    parse_int_list,
    parse_mix,
    parse_seeds,
)
from gan_models.vae_ops import class_weights

REPO = Path(__file__).resolve().parents[2]


# --- integer lists ------------------------------------------------------------------------
def test_int_lists_ranges_and_separators():
    assert parse_int_list("0,2-4") == [0, 2, 3, 4]
    assert parse_int_list(" 4-2 ; -1\n7") == [4, 3, 2, -1, 7]
    assert parse_int_list("-3--1") == [-3, -2, -1]
    assert parse_int_list("0 - 2") == [0, 1, 2]
    for bad in ("", "a", "1-x", ", ,", "1-2-3", "3-"):
        with pytest.raises(GanStudioError):
            parse_int_list(bad)


def test_seeds_accept_descending_ranges_and_stay_in_range():
    assert parse_seeds("1, 5, 42") == [1, 5, 42]
    assert parse_seeds("0-3,7") == [0, 1, 2, 3, 7]
    assert parse_seeds("7-0") == [7, 6, 5, 4, 3, 2, 1, 0]
    assert parse_seeds(f"{MAX_SEED}") == [MAX_SEED]
    with pytest.raises(GanStudioError, match="below 0"):
        parse_seeds("-1")
    with pytest.raises(GanStudioError, match="below 0"):
        parse_seeds("2--2")
    with pytest.raises(GanStudioError, match="above the largest seed"):
        parse_seeds(f"{MAX_SEED - 1}-{MAX_SEED + 1}")
    with pytest.raises(GanStudioError, match="no seeds given"):
        parse_seeds(" , ")


def test_unknown_tokens_are_named_with_an_example():
    with pytest.raises(GanStudioError, match=re.escape(
            "'x' is not a seed or range; write e.g. 1, 5, 42 or 0-7")):
        parse_seeds("1, x")
    with pytest.raises(GanStudioError, match="'1.5' is not an index or range"):
        parse_indices("1.5")
    long_junk = "z" * 5000
    with pytest.raises(GanStudioError) as err:
        parse_seeds(long_junk)
    assert len(str(err.value)) < 200  # the message quotes a short piece, not the whole text


def test_nodes_and_cli_share_one_seed_grammar():
    assert generate.parse_seeds is parse_seeds
    assert generate.parse_seeds("7-0")[0] == 7
    parsers = re.compile(r"def (parse_seeds|parse_int_list|parse_class_list|parse_seed_list)\b")
    owners = [p.relative_to(REPO).as_posix()
              for folder in ("gan_models", "nodes") for p in (REPO / folder).rglob("*.py")
              if parsers.search(p.read_text())]
    assert owners == ["gan_models/latent/grammar.py"]


def test_indices_allow_negative_positions():
    assert parse_indices("-1") == [-1]
    assert parse_indices("7-0")[:2] == [7, 6]
    assert parse_indices("0, -2--1") == [0, -2, -1]


# --- limits: counted before anything is expanded ------------------------------------------
def test_huge_ranges_are_refused_before_expanding():
    with pytest.raises(GanStudioError, match=re.escape(
            "seeds '0-1000000' would make 1,000,001 seeds; the limit is 100,000")):
        parse_seeds("0-1000000," * 400)
    with pytest.raises(GanStudioError, match="10,000,000,001 seeds; the limit is 100,000"):
        parse_seeds("0-10000000000")
    with pytest.raises(GanStudioError, match="indices .* the limit is 100,000"):
        parse_indices(f"0-{10**18}")
    with pytest.raises(GanStudioError, match=re.escape(
            "these seeds would make 120,002 seeds; the limit is 100,000")):
        parse_seeds("0-60000, 0-60000")
    assert len(parse_seeds(f"1-{MAX_LIST_ITEMS}")) == MAX_LIST_ITEMS


def test_smaller_limits_and_long_texts():
    with pytest.raises(GanStudioError, match="the limit is 10$"):
        parse_seeds("0-10", limit=10)
    with pytest.raises(GanStudioError, match=f"the limit is {MAX_TEXT_CHARS:,}"):
        parse_seeds("1," * MAX_TEXT_CHARS)
    with pytest.raises(GanStudioError, match=f"the limit is {MAX_TEXT_CHARS:,}"):
        parse_mix("cat," * MAX_TEXT_CHARS)
    with pytest.raises(GanStudioError, match="too large"):
        parse_seeds("9" * 1000)
    with pytest.raises(GanStudioError, match="more than the limit of 3"):
        parse_mix("a + b, c, d", limit=3)


# --- weighted mixes -----------------------------------------------------------------------
def test_mixes_weights_default_to_one_and_names_may_hold_colons():
    assert parse_mix("cat:0.7, dog:0.3") == [[("cat", 0.7)], [("dog", 0.3)]]
    assert parse_mix("cat") == [[("cat", 1.0)]]
    assert parse_mix("cat:0.7 + dog:0.3, bird\n 2") == [
        [("cat", 0.7), ("dog", 0.3)], [("bird", 1.0)], [("2", 1.0)]]
    assert parse_mix("ns:thing") == [[("ns:thing", 1.0)]]
    assert parse_mix("ns:thing:2") == [[("ns:thing", 2.0)]]
    assert parse_mix("12:30:1") == [[("12:30", 1.0)]]
    assert parse_mix(" , ", allow_empty=True) == []


@pytest.mark.parametrize("text, fragment", [
    ("cat:nan", "weight of 'cat' is not a finite number"),
    ("cat:inf, dog", "weight of 'cat' is not a finite number"),
    ("dog + cat:-inf", "weight of 'cat' is not a finite number"),
    ("cat:-0.5", "weight of 'cat' is negative"),
    (":0.5", "has a weight but no class name"),
    ("cat + , dog", "has an empty part"),
    (" , ", "no class given"),
])
def test_bad_mixes_say_what_is_wrong(text, fragment):
    with pytest.raises(GanStudioError, match=re.escape(fragment)):
        parse_mix(text)


def test_class_rows_mix_or_cycle():
    model = tiny_dcgan(num_classes=3, class_names=["a", "b:c", "d"])
    args = (model.num_classes, model.class_index)
    mixed = class_rows(parse_mix("a:3, d:1"), *args, 2, "mix")
    assert torch.allclose(mixed, torch.tensor([[0.75, 0, 0.25]] * 2))
    cycled = class_rows(parse_mix("b:c, a:0.5 + d:0.5"), *args, 3, "cycle")
    assert torch.allclose(cycled, torch.tensor([[0, 1, 0], [0.5, 0, 0.5], [0, 1, 0]]))
    with pytest.raises(GanStudioError, match="add up to 0"):
        class_rows(parse_mix("a:0 + d:0"), *args, 1, "cycle")
    with pytest.raises(GanStudioError, match="unknown class 'e'"):
        class_rows(parse_mix("e"), *args, 1)


def test_vae_classes_use_the_same_grammar():
    model = tiny_dcgan(num_classes=3, class_names=["a", "b", "c"])
    with pytest.raises(GanStudioError, match="weight of 'a' is not a finite number"):
        class_weights(model, "a:nan", 2)
    assert torch.equal(class_weights(model, "c, 0", 3), torch.eye(3)[[2, 0, 2]])
