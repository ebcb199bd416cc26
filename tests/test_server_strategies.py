from types import SimpleNamespace

import numpy as np
import pytest

from study.federation.site_queries import SiteFailure
from study.federation.strategies import OrderedFedAvg, _clip_update


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



class _Reply:
    """Just what the strategy reads of a reply that carries an error, or a model from a site."""

    def __init__(self, error=None):
        self.error = SimpleNamespace(reason=error)

    def has_error(self):
        return self.error.reason is not None


def test_a_failing_site_stops_the_round_instead_of_being_averaged_away():
    strategy = OrderedFedAvg(min_train_nodes=2, min_available_nodes=2)
    with pytest.raises(SiteFailure, match="1 of 2 sites returned a model; first failure: OSError: data file missing"):
        strategy.aggregate_train(1, [_Reply(), _Reply(error="Traceback...\nOSError: data file missing")])
    with pytest.raises(SiteFailure, match="1 of 2 sites returned a model; first failure: no reply"):
        strategy.aggregate_train(1, [_Reply()])


def test_adaptive_clipping_charges_the_clipped_count_to_the_budget():
    """Update noise and count noise together must be one Gaussian mechanism of the calibrated multiplier z."""
    from study.federation.strategies import SeededServerSideAdaptiveClipping

    z = 6.0
    strategy = SeededServerSideAdaptiveClipping(OrderedFedAvg(), z, 1.0, 5, seed=0)
    # raw 0/1 bits have sensitivity 1, like one site's clipped update (norm <= clipping norm)
    combined = (strategy.noise_multiplier**-2 + strategy.clipped_count_stddev**-2) ** -0.5
    assert combined == pytest.approx(z)
    assert strategy.noise_multiplier > z
