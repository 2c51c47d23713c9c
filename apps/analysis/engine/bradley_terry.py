"""Bradley-Terry scores with ties (Davidson 1970), fitted by vectorised Newton.

For a pair (i, j) with strengths exp(theta):
  P(i wins) = e^{theta_i} / Z,  P(j wins) = e^{theta_j} / Z,
  P(tie)    = e^{lambda + (theta_i + theta_j)/2} / Z,
i.e. a softmax over three linear predictors; the log-likelihood is concave in
(theta, lambda). A win is a non-zero answer's sign, a tie an 'equal' answer.
theta_0 is fixed at 0 while fitting, and scores are reported centred to mean 0.
A tiny ridge (1e-6) keeps estimates finite when a condition never loses.
CIs: percentile bootstrap over tasks (multinomial over task types, per pair),
all replicates fitted at once: parameters are (B, K) arrays.
"""

from __future__ import annotations

import numpy as np

RIDGE = 1e-6


def _design(pairs: list[tuple[int, int]], k: int) -> np.ndarray:
    """(P, 3, K+1) design: outcome predictors in terms of (theta_0..theta_{K-1}, lambda)."""
    d = np.zeros((len(pairs), 3, k + 1))
    for p, (i, j) in enumerate(pairs):
        d[p, 0, i] = 1.0
        d[p, 1, j] = 1.0
        d[p, 2, i] = d[p, 2, j] = 0.5
        d[p, 2, k] = 1.0
    return d


def fit(pairs: list[tuple[int, int]], counts: np.ndarray, k: int, iters: int = 50) -> np.ndarray:
    """Fit (B, K+1) parameters from counts (B, P, 3) = (wins_i, wins_j, ties) per pair."""
    counts = np.asarray(counts, float)
    if counts.ndim == 2:
        counts = counts[None]
    b = counts.shape[0]
    design = _design(pairs, k)[:, :, 1:]  # drop theta_0 (fixed at 0): (P, 3, K)
    n = counts.sum(axis=2)  # (B, P)
    params = np.zeros((b, k))  # theta_1.., lambda
    eye = np.eye(k)
    for _ in range(iters):
        eta = np.einsum("pok,bk->bpo", design, params)
        eta -= eta.max(axis=2, keepdims=True)
        prob = np.exp(eta)
        prob /= prob.sum(axis=2, keepdims=True)  # (B, P, 3)
        resid = counts - n[..., None] * prob
        grad = np.einsum("pok,bpo->bk", design, resid) - 2 * RIDGE * params
        cov = n[..., None, None] * (
            np.einsum("bpo,oq->bpoq", prob, np.eye(3)) - prob[..., :, None] * prob[..., None, :]
        )
        hess = np.einsum("pok,bpoq,pql->bkl", design, cov, design) + 2 * RIDGE * eye
        step = np.linalg.solve(hess, grad[..., None])[..., 0]
        params += step
        if np.max(np.abs(step)) < 1e-10:
            break
    theta = np.concatenate([np.zeros((b, 1)), params[:, : k - 1]], axis=1)
    theta -= theta.mean(axis=1, keepdims=True)
    return np.concatenate([theta, params[:, k - 1 :]], axis=1)
