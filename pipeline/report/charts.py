"""The report's charts, drawn by matplotlib as inline SVG.

matplotlib rather than Vega-Lite: the charts are drawn here, from the
aggregates, so the page needs no JavaScript runtime inlined (Vega's is about
1 MB) and shows in any browser, scripts off included; text is drawn as paths
(svg.fonttype 'path'), so no font is fetched. Each chart gets its own id salt,
so that the element ids of several SVGs in one page never collide.
"""
import io
import re
from typing import Dict, List, Optional, Sequence

import matplotlib

matplotlib.use('Agg')  # no display: files only
import matplotlib.pyplot as plt  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

_PROLOGUE = re.compile(r'^.*?(?=<svg)', re.S)  # the XML declaration and DOCTYPE: not allowed inside HTML
OTHER = 'other'
_TOP_COLOURS = 10  # labels given a colour of their own in the embedding map


def _svg(fig, name: str) -> str:
  with matplotlib.rc_context({'svg.hashsalt': name, 'svg.fonttype': 'path'}):
    buf = io.StringIO()
    fig.savefig(buf, format='svg', bbox_inches='tight', metadata={'Date': None})
  plt.close(fig)
  return _PROLOGUE.sub('', buf.getvalue(), count=1)


def _short(label: str, width: int = 32) -> str:
  return label if len(label) <= width else label[:width - 1] + '…'


def label_bars(labels: Sequence[str], counts: Sequence[int], name: str = 'labels') -> str:
  """Horizontal bars, most frequent on top, with count and share at each bar's end."""
  total = max(sum(counts), 1)
  fig, ax = plt.subplots(figsize=(8, 0.28 * len(labels) + 0.8))
  y = np.arange(len(labels))
  ax.barh(y, counts, color='#4c78a8')
  ax.set_yticks(y, [_short(label) for label in labels], fontsize=8)
  ax.invert_yaxis()
  for i, count in enumerate(counts):
    ax.text(count, i, f' {count:,} ({count / total:.1%})', va='center', fontsize=7)
  ax.set_xlabel('rows (top-1 label)')
  ax.margins(x=0.25)
  return _svg(fig, name)


def compare_bars(labels: Sequence[str], counts: Sequence[int], other: Sequence[int], names: Sequence[str]) -> str:
  """The label distribution of two runs side by side."""
  fig, ax = plt.subplots(figsize=(8, 0.36 * len(labels) + 1.0))
  y = np.arange(len(labels))
  ax.barh(y - 0.2, counts, height=0.4, color='#4c78a8', label=names[0])
  ax.barh(y + 0.2, other, height=0.4, color='#f58518', label=names[1])
  ax.set_yticks(y, [_short(label) for label in labels], fontsize=8)
  ax.invert_yaxis()
  ax.set_xlabel('rows (top-1 label)')
  ax.legend(loc='lower right', fontsize=8)
  return _svg(fig, 'compare')


def score_histogram(counts: Sequence[int], edges: Sequence[float]) -> str:
  """Top-1 scores in equal bins over [0, 1]; bins under 0.5 shaded apart."""
  fig, ax = plt.subplots(figsize=(8, 2.6))
  lefts = np.asarray(edges[:-1])
  colours = ['#e45756' if left < 0.5 else '#4c78a8' for left in lefts]
  ax.bar(lefts, counts, width=np.diff(edges), align='edge', color=colours, edgecolor='white')
  ax.axvline(0.5, color='black', linewidth=0.8, linestyle='--')
  ax.set_xlim(0, 1)
  ax.set_xlabel('top-1 score')
  ax.set_ylabel('rows')
  return _svg(fig, 'scores')


def embedding_map(points: np.ndarray, labels: Optional[List[str]], axis_names: Sequence[str]) -> str:
  """A scatter of 2-D points, the most frequent labels in colours of their own, the rest grey."""
  fig, ax = plt.subplots(figsize=(7, 5))
  if labels is None:
    ax.scatter(points[:, 0], points[:, 1], s=6, alpha=0.6, color='#4c78a8', linewidths=0)
  else:
    ranked: Dict[str, int] = {}
    for label in labels:
      ranked[label] = ranked.get(label, 0) + 1
    top = [label for label, _ in sorted(ranked.items(), key=lambda kv: (-kv[1], kv[0]))[:_TOP_COLOURS]]
    shown = np.array([label if label in top else OTHER for label in labels])
    palette = plt.get_cmap('tab10')
    for i, label in enumerate(top + [OTHER]):
      mask = shown == label
      if mask.any():
        colour = '#bbbbbb' if label == OTHER else palette(i % 10)
        ax.scatter(points[mask, 0], points[mask, 1], s=6, alpha=0.7, color=colour, linewidths=0,
                   label=f'{_short(label, 24)} ({int(mask.sum())})')
    ax.legend(fontsize=7, markerscale=2, loc='center left', bbox_to_anchor=(1.0, 0.5))
  ax.set_xlabel(axis_names[0])
  ax.set_ylabel(axis_names[1])
  return _svg(fig, 'map')


def principal_components(vectors: np.ndarray, dims: int = 2) -> np.ndarray:
  """The sample's projection on its first `dims` principal components (centred, by SVD)."""
  centred = vectors - vectors.mean(axis=0)
  if len(centred) < 2:
    return np.zeros((len(centred), dims))
  _, _, components = np.linalg.svd(centred, full_matrices=False)
  projected = centred @ components[:dims].T
  return np.pad(projected, ((0, 0), (0, dims - projected.shape[1])))
