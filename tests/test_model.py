import numpy as np
import pytest

from gpucdp.errors import SettingsError
from gpucdp.model import FSModel, decode, estimate_u, pair_probabilities, strides, train_em
from gpucdp.settings import ComparisonSettings


def _simulate(rng, n, lam, m_true, u_true):
    is_match = rng.random(n) < lam
    gamma = np.stack([
        np.where(is_match, rng.choice(len(m), n, p=m), rng.choice(len(u), n, p=u))
        for m, u in zip(m_true, u_true)
    ], axis=1)
    return gamma, is_match


def test_decode_inverts_encoding():
    n_levels = np.array([1, 4, 2], dtype=np.int32)
    rng = np.random.default_rng(1)
    gamma = np.stack([rng.integers(-1, L + 1, 500) for L in n_levels], axis=1)
    patterns = ((gamma + 1) * strides(n_levels)).sum(axis=1)
    assert (decode(patterns, n_levels) == gamma).all()


def test_textbook_em_recovers_m_and_lambda():
    rng = np.random.default_rng(0)
    m_true = [np.array([0.1, 0.2, 0.7]), np.array([0.05, 0.05, 0.1, 0.8]), np.array([0.2, 0.8])]
    u_true = [np.array([0.9, 0.08, 0.02]), np.array([0.9, 0.05, 0.03, 0.02]), np.array([0.7, 0.3])]
    gamma, _ = _simulate(rng, 300_000, 0.25, m_true, u_true)
    n_levels = np.array([2, 3, 1], dtype=np.int32)
    patterns = ((gamma + 1) * strides(n_levels)).sum(axis=1)
    uniq, counts = np.unique(patterns, return_counts=True)
    m, u, lambdas, info = train_em(uniq, counts, n_levels, u_true, non_match_classes=1)
    assert info["converged"]
    assert lambdas[0] == pytest.approx(0.25, abs=0.01)
    for got, want in zip(u[0], u_true):  # the random-pair u stays fixed in the textbook model
        np.testing.assert_allclose(got, want, atol=1e-5)
    for got, want in zip(m, m_true):
        np.testing.assert_allclose(got, want, atol=0.02)


def test_latent_class_model_separates_related_non_matches():
    """Matches, households (agree on surname and phone, not on first name) and random pairs."""
    rng = np.random.default_rng(3)
    n = 400_000
    cls = rng.choice(3, n, p=[0.3, 0.2, 0.5])
    first = [np.array([0.05, 0.15, 0.8]), np.array([0.9, 0.08, 0.02]), np.array([0.95, 0.04, 0.01])]
    last = [np.array([0.05, 0.1, 0.85]), np.array([0.05, 0.05, 0.9]), np.array([0.97, 0.02, 0.01])]
    phone = [np.array([0.1, 0.9]), np.array([0.2, 0.8]), np.array([0.999, 0.001])]
    dob = [np.array([0.05, 0.95]), np.array([0.98, 0.02]), np.array([0.99, 0.01])]
    tables = [first, last, phone, dob]
    gamma = np.stack([np.select([cls == k for k in range(3)], [rng.choice(t[k].size, n, p=t[k]) for k in range(3)])
                      for t in tables], axis=1)
    n_levels = np.array([2, 2, 1, 1], dtype=np.int32)
    patterns = ((gamma + 1) * strides(n_levels)).sum(axis=1)
    uniq, inverse, counts = np.unique(patterns, return_inverse=True, return_counts=True)
    u_random = [t[2] for t in tables]
    comps = [ComparisonSettings.model_validate({"name": f"c{i}", "levels": [
        {"method": "exact", "column": f"c{i}"}] * int(L)}) for i, L in enumerate(n_levels)]
    results = {}
    for k_non in (1, 2):
        m, u, lambdas, info = train_em(uniq, counts, n_levels, u_random, non_match_classes=k_non)
        model = FSModel(comps, m, u, lambdas, info, u_random)
        predicted = model.probability(model.pattern_weights(uniq))[inverse] >= 0.5
        truth = cls == 0
        results[k_non] = (predicted & truth).sum() / predicted.sum()
    assert lambdas[0] == pytest.approx(0.3, abs=0.02)
    np.testing.assert_allclose(m[0], first[0], atol=0.02)
    # the textbook model calls households matches; the latent-class model does not
    assert results[1] < 0.75 and results[2] > 0.97


def test_estimate_u_smooths_unseen_levels():
    n_levels = np.array([2], dtype=np.int32)
    patterns = ((np.array([[0]] * 99 + [[1]]) + 1) * strides(n_levels)).sum(axis=1)
    (u,) = estimate_u(patterns, n_levels)
    assert u.sum() == pytest.approx(1.0)
    assert u[2] > 0 and u[0] > 0.9


def test_nulls_are_neutral_and_weights_follow_bayes_factors():
    comp = ComparisonSettings.model_validate({"name": "a", "levels": [{"method": "exact", "column": "a"}]})
    model = FSModel([comp, comp], [np.array([0.1, 0.9])] * 2, [[np.array([0.9, 0.1])] * 2], np.array([0.5, 0.5]))
    n_levels = model.n_levels
    pats = ((np.array([[1, 1], [1, -1], [-1, -1], [0, 1]]) + 1) * strides(n_levels)).sum(axis=1)
    w = model.pattern_weights(pats)
    bf = np.log2(9.0)
    np.testing.assert_allclose(w, [2 * bf, bf, 0.0, 0.0])
    assert model.probability(np.array([0.0]))[0] == pytest.approx(0.5)


def test_model_round_trip_and_validation(tmp_path):
    comp = ComparisonSettings.model_validate(
        {"name": "a", "levels": [{"method": "exact", "column": "a"}, {"method": "jaro_winkler", "column": "a",
                                                                        "threshold": 0.9}]})
    model = FSModel([comp], [np.array([0.1, 0.2, 0.7])],
                    [[np.array([0.9, 0.09, 0.01])], [np.array([0.5, 0.3, 0.2])]], np.array([0.2, 0.5, 0.3]),
                    {"iterations": 3}, [np.array([0.95, 0.04, 0.01])])
    path = tmp_path / "model.json"
    model.save(path)
    from gpucdp.model import load_model

    again = load_model(path)
    assert again.comparisons == model.comparisons and again.lam == model.lam
    np.testing.assert_allclose(again.m[0], model.m[0])
    np.testing.assert_allclose(again.u[1][0], model.u[1][0])
    np.testing.assert_allclose(again.pattern_weights(np.arange(4)), model.pattern_weights(np.arange(4)))
    with pytest.raises(SettingsError, match="not a gpucdp model"):
        FSModel.from_dict({"format": "x"})
    bad = model.to_dict()
    bad["comparisons"][0]["m"] = [0.5, 0.5]
    with pytest.raises(SettingsError, match="need 3 values"):
        FSModel.from_dict(bad)
    with pytest.raises(SettingsError, match="does not exist"):
        load_model(tmp_path / "nope.json")


@pytest.mark.parametrize("keep_weights", [False, True])
def test_pair_probabilities_are_the_same_on_the_host_and_as_array_operations(keep_weights):
    from strict_xp import StrictXP

    rng = np.random.default_rng(5)
    p, n, m = 40, 500, 20_000
    pattern_weight = rng.normal(0, 40, p)  # some beyond ±60, where the probability is clipped
    inverse = rng.integers(0, p, m).astype(np.int32)
    left = rng.integers(0, n, m).astype(np.int32)
    terms = [(rng.random(p) < 0.5, rng.normal(0, 3, n)) for _ in range(2)]
    # the formula, spelled out
    want_weights = pattern_weight[inverse]
    for exact, adjustment in terms:
        hit = exact[inverse]
        want_weights[hit] += 0.8 * adjustment[left[hit]]
    want = 1.0 / (1.0 + np.exp2(-np.clip(want_weights, -60, 60)))
    given = list(terms)
    host, weights = pair_probabilities(pattern_weight, inverse, left, given, 0.8, chunk_size=999,
                                       keep_weights=keep_weights)
    assert given == []  # emptied as read, so that each adjustment can be freed once copied
    xp = StrictXP()  # the device's array operations, a chunk of pairs at a time
    device, device_weights = pair_probabilities(
        xp.asarray(pattern_weight), xp.asarray(inverse), xp.asarray(left),
        [(xp.asarray(e), xp.asarray(a)) for e, a in terms], 0.8, chunk_size=999, keep_weights=keep_weights, xp=xp)
    np.testing.assert_allclose(host, want, rtol=1e-15, atol=0)  # exp2: numpy's and Numba's libm may round apart
    np.testing.assert_allclose(device.get(), want, rtol=1e-15, atol=0)
    if keep_weights:
        np.testing.assert_array_equal(weights, want_weights)
        np.testing.assert_array_equal(device_weights.get(), want_weights)
    else:
        assert weights is None and device_weights is None
    empty, _ = pair_probabilities(np.zeros(0), np.zeros(0, np.int32), np.zeros(0, np.int32), [], 0.8, chunk_size=10)
    assert empty.shape == (0,)

