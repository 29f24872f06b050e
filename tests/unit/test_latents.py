import numpy as np
import pytest
import torch

from gan_models import GanStudioError, LatentBatch, seeded_normal
from gan_models.latent import one_hot_weights


def test_same_seed_same_latents_and_batch_offsets():
    a = seeded_normal(7, 4, 16)
    b = seeded_normal(7, 4, 16)
    assert torch.equal(a, b)
    # sample i of a batch seeded s is sample 0 of a batch seeded s + i
    assert torch.equal(seeded_normal(9, 1, 16)[0], a[2])
    assert not torch.equal(a[0], a[1])


def test_nvlabs_mode_matches_numpy_randomstate():
    z = seeded_normal(42, 2, 512, mode="nvlabs")
    for i in range(2):
        ref = np.random.RandomState(42 + i).randn(1, 512)[0]
        assert np.allclose(z[i].numpy(), ref.astype(np.float32))


def test_truncated_normal_bounds_and_determinism():
    z = seeded_normal(3, 8, 256, truncate=1.0)
    assert z.abs().max() <= 1.0
    assert torch.equal(z, seeded_normal(3, 8, 256, truncate=1.0))
    assert abs(float(z.std()) - 0.54) < 0.1  # std of N(0,1) truncated at +-1


def test_huge_seed_wraps_not_crashes():
    z = seeded_normal(0xFFFFFFFFFFFFFFFF, 2, 8)
    assert torch.equal(z[1], seeded_normal(0, 1, 8)[0])


def test_latent_batch_validates_shapes():
    with pytest.raises(GanStudioError, match="w\\+ latents must have 3 dims"):
        LatentBatch(torch.zeros(2, 8), space="w+")
    with pytest.raises(GanStudioError, match="labels"):
        LatentBatch(torch.zeros(2, 8), labels=torch.zeros(3, 4))
    with pytest.raises(GanStudioError, match="unknown latent space"):
        LatentBatch(torch.zeros(2, 8), space="q")


def test_select_keeps_seeds_and_labels_aligned():
    batch = LatentBatch(torch.arange(12.).view(4, 3), labels=torch.eye(4), seeds=(5, 6, 7, 8))
    sub = batch.select([3, 1])
    assert sub.seeds == (8, 6)
    assert torch.equal(sub.values[0], batch.values[3])
    assert torch.equal(sub.labels[1], batch.labels[1])
    assert len(batch.select(slice(1, 3))) == 2


def test_one_hot_weights_normalises():
    v = one_hot_weights([(0, 3.0), (2, 1.0)], 4)
    assert torch.allclose(v, torch.tensor([0.75, 0, 0.25, 0]))
    with pytest.raises(GanStudioError):
        one_hot_weights([(1, 0.0)], 4)
