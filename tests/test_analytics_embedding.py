"""The book embedding: PCA of the depth profile, its files and the shipped model."""

from __future__ import annotations

import numpy as np
import pytest

from rltrader.analytics import embedding
from rltrader.analytics.embedding import BookEmbedding, depth_profile


@pytest.fixture(scope="module")
def small_days() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Two simulated days (4 books each, a snapshot every 10 steps): seeds 1 and 2."""
    return (embedding.simulated_depth("small", 1), embedding.simulated_depth("small", 2))


def test_profile_is_the_cumulative_depth_chart_in_shares() -> None:
    bid = np.array([[3, 1, 0, 0, 0, 0, 0, 0, 0, 0], [0] * 10])
    ask = np.array([[2, 0, 4, 0, 0, 0, 0, 0, 0, 0], [0] * 10])
    profile = depth_profile(bid, ask)
    np.testing.assert_allclose(profile[0, :3], [0.3, 0.4, 0.4])
    np.testing.assert_allclose(profile[0, 10:13], [0.2, 0.2, 0.6])
    assert profile[0, 9] + profile[0, 19] == pytest.approx(1.0)
    assert np.isnan(profile[1]).all()


def test_transform_is_k_dimensional_and_nan_without_depth(small_days) -> None:
    (bid, ask), _ = small_days
    model = BookEmbedding.fit(bid, ask, k=3)
    assert model.k == 3 and model.levels == 10
    out = model.transform(bid, ask)
    empty_book = (bid.sum(axis=1) + ask.sum(axis=1)) == 0
    assert out.shape == (bid.shape[0], 3)
    assert np.array_equal(np.isnan(out).any(axis=1), empty_book)
    row = int(np.flatnonzero(~empty_book)[5])
    np.testing.assert_allclose(model.transform(bid[row], ask[row]), out[row])
    empty = np.zeros((2, 10), dtype=np.int64)
    assert np.isnan(model.transform(empty, empty)).all()
    # components orthonormal; projecting the reconstruction gives the embedding back
    np.testing.assert_allclose(model.components @ model.components.T, np.eye(3), atol=1e-12)
    back = model.inverse_transform(out[~empty_book])
    np.testing.assert_allclose((back - model.mean) @ model.components.T, out[~empty_book],
                               atol=1e-12)
    with pytest.raises(ValueError, match="depth_bid"):
        model.transform(bid[:, :5], ask[:, :5])
    with pytest.raises(ValueError, match="k must be"):
        BookEmbedding.fit(bid, ask, k=0)


def test_fit_is_deterministic(small_days) -> None:
    (bid, ask), _ = small_days
    one, two = BookEmbedding.fit(bid, ask), BookEmbedding.fit(bid.copy(), ask.copy())
    np.testing.assert_array_equal(one.components, two.components)
    np.testing.assert_array_equal(one.mean, two.mean)


def test_beats_the_mean_model_on_a_held_out_day(small_days) -> None:
    (bid, ask), (held_bid, held_ask) = small_days
    model = BookEmbedding.fit(bid, ask, k=4)
    error = model.reconstruction_error(held_bid, held_ask)
    assert error["rows"] == held_bid.shape[0]
    assert error["rmse"] < 0.5 * error["mean_rmse"]
    assert error["explained_variance"] > 0.8
    # more components never describe the held-out day worse
    rmse = [BookEmbedding.fit(bid, ask, k).reconstruction_error(held_bid, held_ask)["rmse"]
            for k in (1, 2, 4, 8)]
    assert rmse == sorted(rmse, reverse=True)


def test_save_load_round_trip(tmp_path, small_days) -> None:
    (bid, ask), _ = small_days
    model = BookEmbedding.fit(bid, ask, k=4, info={"note": "test", "rows": [1, 2]})
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = BookEmbedding.load(path)
    np.testing.assert_array_equal(loaded.transform(bid, ask), model.transform(bid, ask))
    np.testing.assert_array_equal(loaded.explained_variance_ratio,
                                  model.explained_variance_ratio)
    assert loaded.info == {"note": "test", "rows": [1, 2]}


def test_shipped_model_gives_its_reported_held_out_errors() -> None:
    """The errors the fit reported are reproduced on the held-out LOBSTER quarter and a
    held-out simulated day."""
    model = BookEmbedding.default()
    assert model is BookEmbedding.default()            # loaded once
    assert (model.k, model.levels) == (4, 10)
    reported = {row["source"]: row for row in model.info["held_out"]}
    depth, stamps = embedding.lobster_depth()
    _, lobster_held_out = embedding.split_in_time(depth, stamps)
    checks = {"LOBSTER AAPL 2012-06-21, last 25%": lobster_held_out,
              "sim rmsc04 seed 2": embedding.simulated_depth("rmsc04", 2)}
    for source, held_out in checks.items():
        error = model.reconstruction_error(*held_out)
        for key in ("rows", "rmse", "mean_rmse", "explained_variance"):
            assert error[key] == pytest.approx(reported[source][key], rel=1e-9), (source, key)
        assert error["rmse"] < 0.5 * error["mean_rmse"]


def test_shipped_model_matches_a_refit() -> None:
    """``python -m rltrader.analytics.embedding fit`` gives the shipped subspace again."""
    model = BookEmbedding.default()
    refit, table = embedding.fit_shipped()
    np.testing.assert_allclose(refit.mean, model.mean, atol=1e-12)
    # the same subspace: equal projection matrices (and, signs fixed, equal axes)
    projection = model.components.T @ model.components
    np.testing.assert_allclose(refit.components.T @ refit.components, projection, atol=1e-9)
    np.testing.assert_allclose(refit.components, model.components, atol=1e-9)
    assert [row["source"] for row in table] == [r["source"] for r in model.info["held_out"]]


def test_each_components_first_largest_loading_is_positive() -> None:
    """The sign rule, tie included: the shipped model's first component has two equal
    largest loadings (a bid level and its ask level, opposite in sign), and the first of
    them is the positive one whichever the machine's SVD rounds larger."""
    components = BookEmbedding.default().components
    magnitude = np.abs(components)
    ties = magnitude >= magnitude.max(axis=1, keepdims=True) * (1.0 - 1e-9)
    assert ties.sum(axis=1).max() >= 2                     # the case the rule is for
    first = np.argmax(ties, axis=1)
    assert (components[np.arange(len(components)), first] > 0).all()
