import numpy as np

from study.federation.server_app import _clip_update


def test_large_update_is_scaled_to_the_clipping_norm():
    start = [np.zeros((2, 2), dtype=np.float32), np.zeros(3, dtype=np.float32)]
    model = [np.full((2, 2), 3.0, dtype=np.float32), np.full(3, 4.0, dtype=np.float32)]
    clipped = _clip_update(model, start, clipping_norm=1.0)
    norm = np.sqrt(sum(np.square(c - s).sum() for c, s in zip(clipped, start)))
    assert np.isclose(norm, 1.0, atol=1e-6)
    assert all(c.dtype == np.float32 for c in clipped)


def test_small_and_zero_updates_are_left_unchanged():
    start = [np.ones(4, dtype=np.float32)]
    for model in ([np.ones(4, dtype=np.float32)], [np.full(4, 1.1, dtype=np.float32)]):
        np.testing.assert_array_equal(_clip_update(model, start, clipping_norm=1.0)[0], model[0])
