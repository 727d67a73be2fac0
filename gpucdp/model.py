"""Fellegi–Sunter match probabilities, trained on pattern counts.

A pair's gamma vector (one agreement level per comparison) is encoded as one pattern id. Training never looks
at pairs one by one: it runs expectation–maximisation over the *counts* of each distinct pattern among the
candidate pairs, and scoring is a lookup table from pattern to match weight, plus term-frequency adjustments on
the exact levels of chosen comparisons.

The model is a latent-class mixture: one *match* class and ``non_match_classes`` non-match classes, each with
conditionally independent level probabilities. Blocking hands the model non-matches that look alike: relatives
who share a surname, an address and a phone; namesakes who share a common first name. Under one non-match class
with u learnt from random pairs (the textbook model), those correlated agreements multiply into near-certain
matches. Giving them classes of their own lets the mixture explain them as what they are. With
``non_match_classes=1`` the model is the textbook one: u fixed from random pairs, m and λ by EM.

Notes
-----
class likelihood  f_k(γ) = Π_c p_kc[γ_c]   (null levels contribute 1)
match weight      w = log2(λ_0 f_0(γ)) − log2(Σ_{k≥1} λ_k f_k(γ))
term frequency    on the exact level of comparison c, w += log2(Σ_v f_v² / max(tf(value), tf_minimum_u)), where
                  Σ_v f_v² is the chance that two random records agree on the field (Splink's adjustment, with
                  u_exact estimated from the value frequencies): common values count for less, rare ones for more.
probability       p = 1 / (1 + 2^-w)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numba
import numpy as np

from gpucdp.backend import to_host
from gpucdp.errors import SettingsError
from gpucdp.kernels.compare import decode_patterns as decode
from gpucdp.kernels.compare import pattern_strides as strides
from gpucdp.parallel import thread_map
from gpucdp.settings import ComparisonSettings

__all__ = ["FSModel", "decode", "strides", "estimate_u", "train_em", "load_model", "pair_probabilities"]

MODEL_FORMAT = "gpucdp.fellegi_sunter/1"
_EPS = 1e-9
# Pseudo-pairs of the EM prior (see _em_loop): enough to keep tiny inputs sane, nothing at scale; and the match
# share they hold.
PRIOR_PAIRS = 20.0
PRIOR_MATCH_SHARE = 0.3
#: The match class's starting shares (train_em keeps the likeliest fit). From 0.3 alone, EM ended on 1k generated
#: records (seed 1) where a non-match class held part of the matches: log-likelihood -11,022 against -10,971 from
#: 0.7, pairwise F1 0.729 against 0.925. Where both starts reach the same optimum (most inputs) their
#: log-likelihoods differ by ~1e-9 of themselves; on 3M records 0.3 reached the likelier one.
EM_STARTS = (0.3, 0.7)
_SAME_OPTIMUM = 1e-6


def _level_counts(gamma: np.ndarray, counts: np.ndarray, n_levels: np.ndarray, weights=None) -> list[np.ndarray]:
    out = []
    w = counts if weights is None else counts * weights
    for c, L in enumerate(n_levels):
        g = gamma[:, c].astype(np.int64)
        keep = g >= 0
        out.append(np.bincount(g[keep], weights=w[keep], minlength=int(L) + 1).astype(np.float64))
    return out


def estimate_u(
    patterns: Any,
    n_levels: np.ndarray,
    *,
    distinct_pairs: float | None = None,
    prior_pairs: float = 100.0,
    prior_else: float = 0.99,
    xp: Any = np,
) -> list[np.ndarray]:
    """u probabilities from the patterns of random (overwhelmingly non-matching) pairs.

    Parameters
    ----------
    patterns : int32[r]
        Patterns of random pairs (sampled with replacement), an ``xp`` array: counted where they are, and only
        the distinct patterns and their counts come to the host.
    n_levels : int32[C]
    distinct_pairs : float, optional
        How many different pairs the records allow (n(n-1)/2): a sample larger than that repeats pairs and
        carries no more information, so its counts are scaled down to it.
    prior_pairs, prior_else : float
        Pseudo-pairs added to every comparison, ``prior_else`` of them on the "else" level and the rest spread
        over the others: random pairs rarely agree. They keep levels never seen among random pairs (exact email)
        at a small positive u, and make a 2-record input behave (its one random pair is its duplicate);
        against the 300k random pairs of a normal run they weigh nothing.

    Returns
    -------
    list of float64[n_levels[c] + 1], indexed by gamma (0 = else).
    """
    uniq, counts = xp.unique(patterns, return_counts=True)
    uniq, counts = to_host(uniq), to_host(counts).astype(np.float64)
    if distinct_pairs is not None and patterns.size > distinct_pairs > 0:
        counts *= distinct_pairs / patterns.size
    gamma = decode(uniq, n_levels)
    u = []
    for level_counts in _level_counts(gamma, counts, n_levels):
        prior = np.full(level_counts.size, prior_pairs * (1 - prior_else) / max(level_counts.size - 1, 1))
        prior[0] = prior_pairs * prior_else
        smoothed = level_counts + prior
        u.append(smoothed / smoothed.sum())
    return u


def _initial_m(n_levels: np.ndarray) -> list[np.ndarray]:
    # Matches mostly agree strongly: start m geometric in the level (strongest level largest).
    m = []
    for L in n_levels:
        raw = 2.0 ** np.arange(int(L) + 1, dtype=np.float64)
        raw[0] = 0.5
        m.append(raw / raw.sum())
    return m


def _log_ratio_table(gamma: np.ndarray, probs: list[np.ndarray]) -> np.ndarray:
    total = np.zeros(gamma.shape[0], dtype=np.float64)
    for c, p in enumerate(probs):
        g = gamma[:, c].astype(np.int64)
        valid = g >= 0
        total[valid] += np.log(np.maximum(p[g[valid]], _EPS))
    return total


def _agreement_score(probs: list[np.ndarray], n_levels: np.ndarray) -> float:
    """Expected agreement of a class: mean over comparisons of E[gamma] / n_levels (1 = always strongest)."""
    return float(np.mean([(p * np.arange(p.size)).sum() / int(L) for p, L in zip(probs, n_levels)]))


def train_em(
    patterns_unique: np.ndarray,
    counts: np.ndarray,
    n_levels: np.ndarray,
    u_random: list[np.ndarray],
    *,
    non_match_classes: int = 2,
    max_iterations: int = 200,
    tolerance: float = 1e-7,
    starts: tuple[float, ...] | None = None,
    threads: int = 1,
) -> tuple[list[np.ndarray], list[list[np.ndarray]], np.ndarray, dict[str, Any]]:
    """Fit the latent-class model by EM on pattern counts, from each starting match share; keep the likeliest.

    Parameters
    ----------
    patterns_unique : int64[p]
        Distinct pattern ids among the candidate pairs.
    counts : int64[p]
        How many candidate pairs have each pattern.
    n_levels : int32[C]
    u_random : list of float64[L_c + 1]
        Level frequencies among random pairs. With one non-match class it is that class, held fixed; with more,
        the non-match classes start between the match start and it and are all re-estimated.
    non_match_classes : int
    max_iterations, tolerance : EM stopping rule (largest parameter change).
    starts : tuple of float, optional
        The match class's starting shares (default :data:`EM_STARTS`); EM runs from each, and the fit with the
        highest log-likelihood is kept (the earliest of those within 1e-6 of it, which reached the same
        optimum). One start can end where a non-match class has taken part of the matches: small inputs, whose
        candidate pairs mostly match, did so from 0.3 (see :data:`EM_STARTS`).
    threads : int, default 1
        Starts fitted at once, a thread each; the result does not depend on it.

    Returns
    -------
    m : list of float64[L_c + 1]
        Level probabilities of the match class.
    u : list (per non-match class) of list of float64[L_c + 1]
    lambdas : float64[1 + non_match_classes]
        Class shares among the candidate pairs; ``lambdas[0]`` is the match share.
    info : dict
        iterations, converged, log_likelihood (of the fit kept), and each start's share and log-likelihood.
    """
    gamma = np.ascontiguousarray(decode(patterns_unique, n_levels))
    counts = np.asarray(counts, dtype=np.float64)
    m0 = _initial_m(n_levels)
    k_non = int(non_match_classes)
    classes = [m0]
    for j in range(1, k_non + 1):
        t = j / k_non
        classes.append(_normalise([(1 - t) * a + t * b for a, b in zip(m0, u_random)]))
    fixed = np.zeros(len(classes), dtype=np.bool_)
    if k_non == 1:
        fixed[1] = True
    width = int(np.max(n_levels)) + 1
    start_params = np.zeros((len(classes), len(n_levels), width))
    for k, cls in enumerate(classes):
        for c, probs in enumerate(cls):
            start_params[k, c, : probs.size] = probs
    levels = np.asarray(n_levels, dtype=np.int64)

    # the prior (see _em_loop) is the model's, the same for every start: the classes' starting levels, and a
    # match share of PRIOR_MATCH_SHARE
    prior_lambdas = np.array([PRIOR_MATCH_SHARE] + [(1 - PRIOR_MATCH_SHARE) / k_non] * k_non)

    def fit(share: float) -> tuple:
        lambdas = np.array([share] + [(1 - share) / k_non] * k_non)
        return _em_loop(gamma, counts, start_params.copy(), lambdas, fixed, levels, int(max_iterations),
                        float(tolerance), start_params.copy(), prior_lambdas, PRIOR_PAIRS)

    starts = EM_STARTS if starts is None else tuple(starts)
    fits = thread_map(fit, list(starts), threads)
    best = 0
    for i in range(1, len(fits)):
        # fits that reached the same optimum differ by ~1e-9 of their log-likelihood: keep the earlier one then
        if fits[i][4] > fits[best][4] + _SAME_OPTIMUM * abs(fits[best][4]):
            best = i
    params, lambdas, iteration, converged, loglik = fits[best]
    classes = [[params[k, c, : int(L) + 1].copy() for c, L in enumerate(n_levels)] for k in range(len(classes))]
    # The match class is the one that agrees most; EM starts it there, but make sure.
    scores = [_agreement_score(c, n_levels) for c in classes]
    match = int(np.argmax(scores))
    order = [match] + [k for k in range(len(classes)) if k != match]
    info = {"iterations": iteration, "converged": converged, "log_likelihood": loglik,
            "non_match_classes": k_non, "class_agreement": [round(scores[k], 4) for k in order],
            "starts": [{"match_share": float(share), "log_likelihood": float(f[4]), "iterations": int(f[2]),
                        "converged": bool(f[3])} for share, f in zip(starts, fits)],
            "start_kept": float(starts[best])}
    return classes[match], [classes[k] for k in order[1:]], lambdas[order], info


@numba.njit(cache=True, nogil=True)
def _em_loop(gamma, counts, params, lambdas, fixed, n_levels, max_iterations, tolerance, prior_params,
             prior_lambdas, prior_pairs):
    """EM iterations of the latent-class model on pattern counts (see :func:`train_em`).

    gamma int8[p, C]; counts float64[p]; params float64[K, C, W] (level probabilities per class, comparison and
    gamma, zero-padded); lambdas float64[K]; fixed bool[K] (classes held fixed). The M-step adds
    ``prior_pairs`` pseudo-pairs distributed as the starting point (``prior_params``, ``prior_lambdas``): a MAP
    estimate that keeps a handful of candidate pairs from driving the model anywhere, and is negligible at
    thousands. Compiled because at ~20k patterns the numpy version spent 10 ms an iteration in call overhead,
    and EM needs a few hundred.
    """
    n_classes, n_comp, width = params.shape
    n_pat = gamma.shape[0]
    post = np.empty((n_classes, n_pat))
    logp = np.empty_like(params)
    total_count = counts.sum() + prior_pairs
    converged = False
    loglik = 0.0
    iteration = 0
    for iteration in range(1, max_iterations + 1):
        for k in range(n_classes):
            for c in range(n_comp):
                for g in range(width):
                    logp[k, c, g] = math.log(max(params[k, c, g], 1e-9))
        loglik = 0.0
        for q in range(n_pat):
            top = -1e300
            for k in range(n_classes):
                value = math.log(max(lambdas[k], 1e-300))
                for c in range(n_comp):
                    g = gamma[q, c]
                    if g >= 0:
                        value += logp[k, c, g]
                post[k, q] = value
                if value > top:
                    top = value
            norm = 0.0
            for k in range(n_classes):
                post[k, q] = math.exp(post[k, q] - top)
                norm += post[k, q]
            for k in range(n_classes):
                post[k, q] /= norm
            loglik += counts[q] * (top + math.log(norm))
        change = 0.0
        new_lambdas = np.empty(n_classes)
        for k in range(n_classes):
            mass = prior_pairs * prior_lambdas[k]
            for q in range(n_pat):
                mass += post[k, q] * counts[q]
            new_lambdas[k] = max(mass / total_count, 1e-9)
            change = max(change, abs(new_lambdas[k] - lambdas[k]))
            if fixed[k]:
                continue
            level_mass = prior_pairs * prior_lambdas[k] * prior_params[k]
            for q in range(n_pat):
                w = post[k, q] * counts[q]
                for c in range(n_comp):
                    g = gamma[q, c]
                    if g >= 0:
                        level_mass[c, g] += w
            for c in range(n_comp):
                size = n_levels[c] + 1
                total = 0.0
                for g in range(size):
                    total += level_mass[c, g]
                for g in range(size):
                    updated = (level_mass[c, g] + 1e-6) / (total + 1e-6 * size)  # every level stays reachable
                    change = max(change, abs(updated - params[k, c, g]))
                    params[k, c, g] = updated
        lambdas = new_lambdas / new_lambdas.sum()
        if change < tolerance:
            converged = True
            break
    return params, lambdas, iteration, converged, loglik


def _normalise(level_counts: list[np.ndarray]) -> list[np.ndarray]:
    out = []
    for counts in level_counts:
        total = counts.sum()
        out.append((counts + 1e-6) / (total + 1e-6 * len(counts)))  # keep every level reachable
    return out


@dataclass
class FSModel:
    """A trained model: comparisons, the match class's m, the non-match classes' u, and the class shares.

    Attributes
    ----------
    comparisons : list of ComparisonSettings
    m : list of float64[L_c + 1]
        Level probabilities among matches (index = gamma, 0 = else).
    u : list (per non-match class) of list of float64[L_c + 1]
    lambdas : float64[1 + K]
        Class shares among candidate pairs, the match class first.
    u_random : list of float64[L_c + 1] or None
        Level frequencies among random pairs (the starting point of EM), kept for reading the model.
    """

    comparisons: list[ComparisonSettings]
    m: list[np.ndarray]
    u: list[list[np.ndarray]]
    lambdas: np.ndarray
    training: dict[str, Any] = field(default_factory=dict)
    u_random: list[np.ndarray] | None = None

    @property
    def n_levels(self) -> np.ndarray:
        return np.array([len(c.levels) for c in self.comparisons], dtype=np.int32)

    @property
    def lam(self) -> float:
        """Share of matches among candidate pairs."""
        return float(self.lambdas[0])

    def u_mixture(self) -> list[np.ndarray]:
        """Level probabilities among non-matches, all non-match classes pooled."""
        weights = np.asarray(self.lambdas[1:], dtype=np.float64)
        weights = weights / weights.sum()
        return [sum(w * cls[c] for w, cls in zip(weights, self.u)) for c in range(len(self.comparisons))]

    def bayes_factors(self) -> list[np.ndarray]:
        """log2(m / u) per comparison and level against the pooled non-matches (for reading the model)."""
        return [np.log2(np.maximum(m, _EPS) / np.maximum(u, _EPS)) for m, u in zip(self.m, self.u_mixture())]

    def pattern_weights(self, patterns_unique: np.ndarray) -> np.ndarray:
        """Match weight (log2 posterior odds among candidates) of each distinct pattern: float64[p]."""
        gamma = decode(patterns_unique, self.n_levels)
        match = math.log(self.lambdas[0]) + _log_ratio_table(gamma, self.m)
        others = np.stack([math.log(lam) + _log_ratio_table(gamma, cls)
                           for lam, cls in zip(self.lambdas[1:], self.u)])
        top = others.max(axis=0)
        non_match = top + np.log(np.exp(others - top).sum(axis=0))
        return (match - non_match) / math.log(2.0)

    @staticmethod
    def tf_adjustment(tf_values: Any, baseline: float, tf_minimum_u: float, xp: Any = np) -> Any:
        """Extra weight on an exact level for values of relative frequency ``tf_values`` (an ``xp`` array).

        ``baseline`` is the chance that two random records agree on the field (Σ_v f_v², the mean of
        ``tf`` over records): a value as common as that gets no adjustment, rarer ones gain, commoner ones lose.
        """
        return xp.log2(baseline / xp.maximum(tf_values, tf_minimum_u))

    @staticmethod
    def probability(weights: Any, xp: Any = np, out: Any = None) -> Any:
        """Match probability of match weights (an ``xp`` array), ``1 / (1 + 2^-clip(w, -60, 60))``.

        Computed in one buffer, ``out`` if given (it may be ``weights`` itself), so that no other per-pair
        array is made; the same operations in the same order as the formula, so the same bits.
        """
        p = xp.clip(weights, -60, 60, out=out)
        xp.negative(p, out=p)
        xp.exp2(p, out=p)
        xp.add(p, 1.0, out=p)
        return xp.divide(1.0, p, out=p)

    def to_dict(self) -> dict[str, Any]:
        comps = []
        for c, (comp, bf) in enumerate(zip(self.comparisons, self.bayes_factors())):
            item = {
                **comp.model_dump(mode="json"),
                "gamma_labels": ["else"] + [lvl.describe() for lvl in reversed(comp.levels)],
                "m": [float(x) for x in self.m[c]],
                "u": [[float(x) for x in cls[c]] for cls in self.u],
                "log2_bayes_factor": [round(float(x), 4) for x in bf],
            }
            if self.u_random is not None:
                item["u_random"] = [float(x) for x in self.u_random[c]]
            comps.append(item)
        return {"format": MODEL_FORMAT, "lambda": self.lam, "class_lambdas": [float(x) for x in self.lambdas],
                "comparisons": comps, "training": self.training}

    @classmethod
    def from_dict(cls, data: dict[str, Any], origin: str = "model") -> "FSModel":
        if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT:
            raise SettingsError(f"{origin} is not a gpucdp model (expected format {MODEL_FORMAT!r})")
        try:
            lambdas = np.asarray(data["class_lambdas"], dtype=np.float64)
            if lambdas.ndim != 1 or lambdas.size < 2 or (lambdas <= 0).any() or abs(lambdas.sum() - 1) > 1e-6:
                raise ValueError("class_lambdas must be >= 2 positive shares summing to 1")
            k_non = lambdas.size - 1
            comparisons, m, u_random = [], [], []
            u: list[list[np.ndarray]] = [[] for _ in range(k_non)]
            for item in data["comparisons"]:
                comp = ComparisonSettings.model_validate({k: item[k] for k in ("name", "levels", "term_frequency")})
                size = len(comp.levels) + 1
                mm = np.asarray(item["m"], float)
                uu = [np.asarray(x, float) for x in item["u"]]
                if mm.shape != (size,) or len(uu) != k_non or any(x.shape != (size,) for x in uu):
                    raise ValueError(f"comparison {comp.name}: m and each of the {k_non} u need {size} values")
                if (mm < 0).any() or any((x <= 0).any() for x in uu):
                    raise ValueError(f"comparison {comp.name}: m must be >= 0 and u > 0")
                comparisons.append(comp)
                m.append(mm)
                for k in range(k_non):
                    u[k].append(uu[k])
                if "u_random" in item:
                    ur = np.asarray(item["u_random"], float)
                    if ur.shape != (size,) or (ur <= 0).any():
                        raise ValueError(f"comparison {comp.name}: u_random needs {size} values > 0")
                    u_random.append(ur)
        except (KeyError, TypeError, ValueError) as exc:
            raise SettingsError(f"{origin} is not a valid gpucdp model: {exc}") from None
        return cls(comparisons, m, u, lambdas, dict(data.get("training", {})),
                   u_random if len(u_random) == len(comparisons) else None)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")


def pair_probabilities(pattern_weight: Any, inverse: Any, left: Any, terms: list[tuple[Any, Any]],
                       tf_weight: float, *, chunk_size: int, keep_weights: bool = False,
                       xp: Any = np) -> tuple[Any, Any]:
    """Match probability of every candidate pair (and its match weight when ``keep_weights``).

    A pair's weight is its pattern's, ``pattern_weight[inverse[i]]``, plus ``tf_weight`` × the term-frequency
    adjustment of its left record for each comparison of ``terms`` on which its pattern is exact; the
    probability is :meth:`FSModel.probability` of it.

    Parameters
    ----------
    pattern_weight : float64[p]
        Weight of each distinct pattern (:meth:`FSModel.pattern_weights`).
    inverse : int[m]
        Each pair's distinct pattern.
    left : int[m]
        Each pair's first record, as ``adjustment`` numbers the records.
    terms : list of (exact : bool[p], adjustment : float64[n])
        Per term-frequency comparison: which distinct patterns are exact on it, and each record's adjustment
        (:meth:`FSModel.tf_adjustment`), in order: the additions are made in this order. On the host the list
        is emptied as it is read, so that each adjustment is freed once copied (when the caller holds no other
        reference).
    tf_weight : float
    chunk_size : int
        Pairs per step of the device's array operations, which make temporaries per pair.
    keep_weights : bool
        Return the weights too (for the pairs output); otherwise they are never held per pair.
    xp : module
        The arrays' module. On the host one parallel Numba pass computes both, with no temporary per pair,
        where the array operations took ~1.2 s on one core for 37M pairs; on the device (CuPy) the same
        arithmetic runs as array operations, a chunk of pairs at a time.

    Returns
    -------
    probability : float64[m]
    weights : float64[m] or None
    """
    m = int(inverse.shape[0])
    if xp is np:
        exact = np.zeros((pattern_weight.shape[0], len(terms)), dtype=np.bool_)
        adjustments = np.zeros((len(terms), 0 if not terms else terms[0][1].shape[0]), dtype=np.float64)
        for t in range(len(terms)):
            exact[:, t], adjustments[t] = terms.pop(0)
        probability = np.empty(m, dtype=np.float64)
        weights = np.empty(m, dtype=np.float64) if keep_weights else probability
        _pair_probabilities_host(inverse, np.asarray(pattern_weight, dtype=np.float64), left, exact, adjustments,
                                 float(tf_weight), weights, probability)
        return probability, (weights if keep_weights else None)
    weights = pattern_weight[inverse] if m else xp.zeros(0)
    for exact_pattern, adjustment in terms:
        # a chunk of pairs at a time, so that the temporaries are per chunk, not per pair
        for start in range(0, m, chunk_size):
            part = slice(start, start + chunk_size)
            exact = exact_pattern[inverse[part]]
            weights[part][exact] += tf_weight * adjustment[left[part][exact]]
    # the weights are kept only for the pairs output: otherwise the probabilities take their place
    probability = FSModel.probability(weights, xp, out=None if keep_weights else weights)
    return probability, (weights if keep_weights else None)


@numba.njit(cache=True, nogil=True, parallel=True)
def _pair_probabilities_host(inverse, pattern_weight, left, exact, adjustments, tf_weight, weights, probability):
    # the operations of the array path, in its order (so the same bits): gather, add each term, then
    # 1 / (1 + 2^-clip(w, -60, 60)); ``weights`` may be ``probability`` itself
    for i in numba.prange(inverse.shape[0]):
        p = inverse[i]
        w = pattern_weight[p]
        for t in range(exact.shape[1]):
            if exact[p, t]:
                w += tf_weight * adjustments[t, left[i]]
        weights[i] = w
        probability[i] = 1.0 / (1.0 + np.exp2(-min(max(w, -60.0), 60.0)))


def load_model(path: str | Path) -> FSModel:
    """Load a model saved by :meth:`FSModel.save` (``--model model.json`` skips training)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError(f"model file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SettingsError(f"model file {path} cannot be read as JSON: {exc}") from None
    return FSModel.from_dict(data, origin=f"model file {path}")
