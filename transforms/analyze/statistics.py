"""Dataset-level statistics of the embeddings and their reduced columns, from moments summed across batches.

Plain numpy: the Beam half (embeddings.py) sums moments() over all batches
and turns the total into the statistics summary.json and
embedding_stats.json show.
"""
import numpy as np


def moments(embeddings: np.ndarray, reduced: np.ndarray) -> np.ndarray:
  """Sums that add up across batches: count, sum of norms, sums and squares of x and of the reduced x."""
  x, p = embeddings.astype(np.float64), reduced.astype(np.float64)
  return np.concatenate([[len(x), np.linalg.norm(x, axis=1).sum()],
                         x.sum(0), (x * x).sum(0), p.sum(0), (p * p).sum(0)])


def statistics(total, dim: int, pca_dims: int) -> dict:
  """Dataset-level statistics from summed moments(); population variances, as tft.var and tft.pca use."""
  count = int(total[0]) if np.ndim(total) else 0  # CombineGlobally(sum) gives 0 for no rows
  if count == 0:
    return {'count': 0, 'mean_norm': None, 'total_variance': None, 'explained_variance': None,
            'explained_variance_ratio': None}
  mean_norm = total[1] / count
  sums = np.split(np.asarray(total[2:]) / count, np.cumsum([dim, dim, pca_dims]))
  x_mean, x_square, p_mean, p_square = sums
  total_variance = float(np.maximum(x_square - x_mean * x_mean, 0).sum())
  explained = np.maximum(p_square - p_mean * p_mean, 0)
  ratio = explained / total_variance if total_variance > 0 else np.zeros_like(explained)
  return {
      'count': count,
      'mean_norm': float(mean_norm),
      'total_variance': total_variance,
      'explained_variance': explained.tolist(),
      'explained_variance_ratio': ratio.tolist(),
  }
