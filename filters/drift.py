"""Drift check against the seeds: do the synthetic texts still look like the seed distribution?

Two figures on sentence embeddings:
- classifier two-sample test: a logistic regression tries to tell seed from synthetic; its
  cross-validated ROC AUC is 0.5 when it cannot (no drift) and 1.0 when it always can;
- MMD (RBF kernel, median-distance bandwidth) with a permutation p-value.
A gate, not a per-record filter: every record is kept; ``fail`` stops a build (``QCGateFailed``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from factory.core.record import Record
from factory.core.text import as_text, texts_or_failures
from filters.base import Failed, Filter, Keep, QCContext, Verdict
from filters.config import DriftBlock


def classifier_auc(a: np.ndarray, b: np.ndarray, folds: int = 5, seed: int = 0) -> float:
    """Cross-validated ROC AUC of telling ``a`` rows from ``b`` rows (0.5 = indistinguishable)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    x = np.concatenate([a, b])
    y = np.r_[np.zeros(len(a)), np.ones(len(b))]
    folds = max(2, min(folds, len(a), len(b)))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    prob = cross_val_predict(LogisticRegression(C=1.0, max_iter=1000), x, y, cv=cv,
                             method="predict_proba")[:, 1]
    return float(roc_auc_score(y, prob))


def mmd_test(a: np.ndarray, b: np.ndarray, permutations: int = 200, seed: int = 0) -> tuple[float, float]:
    """(MMD² unbiased estimate, permutation p-value) with an RBF kernel at the median distance."""
    from scipy.spatial.distance import cdist

    x = np.concatenate([a, b]).astype(np.float64)
    d2 = cdist(x, x, "sqeuclidean")
    med = np.median(d2[np.triu_indices(len(x), 1)])
    k = np.exp(-d2 / max(med, 1e-12))
    n = len(a)

    def stat(idx: np.ndarray) -> float:
        ia, ib = idx[:n], idx[n:]
        kaa, kbb, kab = k[np.ix_(ia, ia)], k[np.ix_(ib, ib)], k[np.ix_(ia, ib)]
        m, p = len(ia), len(ib)
        return float((kaa.sum() - np.trace(kaa)) / (m * (m - 1)) + (kbb.sum() - np.trace(kbb)) / (p * (p - 1))
                     - 2 * kab.mean())

    observed = stat(np.arange(len(x)))
    rng = np.random.default_rng(seed)
    above = sum(stat(rng.permutation(len(x))) >= observed for _ in range(permutations))
    return observed, (above + 1) / (permutations + 1)


def project_2d(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PCA of both sets together, for the report's scatter plot."""
    from sklearn.decomposition import PCA

    x = np.concatenate([a, b])
    xy = PCA(n_components=2, random_state=0).fit_transform(x) if len(x) > 2 else np.zeros((len(x), 2))
    return xy[: len(a)], xy[len(a):]


class DriftFilter(Filter):
    name = "drift"

    def __init__(self, block: DriftBlock, embedder: Any = None) -> None:
        super().__init__()
        self.block = block
        self.embedder = embedder

    def filter_batch(self, records: list[Record], context: QCContext) -> list[Verdict]:
        b = self.block
        texts, details = texts_or_failures(records, b.column)
        seed_col = b.seed_column or b.column
        # Distinct texts only: a text repeated on one side (fan-out children share their parent's
        # task) lands in both a training and a test fold and makes the classifier look clairvoyant.
        seeds = list(dict.fromkeys(t for row in context.seeds
                                   if (t := as_text(row.get(seed_col))) is not None))
        synth = list(dict.fromkeys(t for t in texts if t is not None))
        out: list[Verdict] = [Keep() if t is not None else Failed(d) for t, d in zip(texts, details)]
        if len(seeds) < 5 or len(synth) < 5:
            self.info = {"gate": "skipped", "message": f"drift not measured: {len(seeds)} seed and "
                         f"{len(synth)} distinct synthetic texts in column {seed_col!r}/{b.column!r} "
                         "(need 5 each)"}
            return out
        rng = np.random.default_rng(0)
        seeds = _sample(seeds, b.max_samples, rng)
        synth = _sample(synth, b.max_samples, rng)
        if self.embedder is None:
            from filters.embed import Embedder

            self.embedder = Embedder(b.model)
        a, s = self.embedder.encode(seeds), self.embedder.encode(synth)
        auc = classifier_auc(a, s)
        mmd, p = mmd_test(a, s, b.permutations)
        gate = "fail" if auc >= b.fail_auc else "warn" if auc >= b.warn_auc or p < b.mmd_alpha else "ok"
        message = (f"drift {gate}: classifier AUC {auc:.3f} (warn >= {b.warn_auc}, fail >= {b.fail_auc}), "
                   f"MMD² {mmd:.4f} (permutation p {p:.3f}, alpha {b.mmd_alpha}); "
                   f"{len(seeds)} seed vs {len(synth)} synthetic texts")
        pa, ps = project_2d(a, s)
        self.info = {"gate": gate, "auc": round(auc, 4), "mmd2": round(mmd, 6), "mmd_p": round(p, 4),
                     "warn_auc": b.warn_auc, "fail_auc": b.fail_auc, "seeds": len(seeds),
                     "synthetic": len(synth), "message": message,
                     "_scatter": {"seed": pa.round(4).tolist(), "synthetic": ps.round(4).tolist(),
                                  "seed_text": [t[:120] for t in seeds],
                                  "synthetic_text": [t[:120] for t in synth]}}
        return out


def _sample(texts: list[str], limit: int, rng: np.random.Generator) -> list[str]:
    if len(texts) <= limit:
        return texts
    return [texts[i] for i in sorted(rng.choice(len(texts), limit, replace=False))]
