"""One convention for the uncertainty of every figure the study reports.

Uncertainty comes from the seeds alone. A cell is the mean ± the standard
deviation over seeds (n - 1 in the denominator). A comparison of two
methods is the mean of their per-seed differences (the same seeds, splits
and test examples) with its t interval over seeds; one "wins" or "loses"
only where the interval excludes 0, else the two are "level".
"""

import numpy as np
import scipy.stats

def fmt(values):
  """Mean ± standard deviation over seeds (n - 1 in the denominator), or
  the value alone for one seed."""
  if len(values) < 2:
    return f'{np.mean(values):.3f}'
  return f'{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}'


# The confidence of the paired intervals.
CONFIDENCE = 0.95


def paired(ours, other) -> tuple[float, float]:
  """(mean, half-width of its t interval at CONFIDENCE) of the per-seed
  differences ours - other (the same seeds, splits and test examples);
  the half-width is NaN for one seed."""
  differences = np.asarray(ours, np.float64) - np.asarray(other, np.float64)
  mean = float(differences.mean())
  if len(differences) < 2:
    return mean, float('nan')
  scale = differences.std(ddof=1) / np.sqrt(len(differences))
  return mean, float(scipy.stats.t.ppf(0.5 + CONFIDENCE / 2,
                                       len(differences) - 1) * scale)


def verdict(mean: float, half: float) -> str:
  """'wins' or 'loses' where the interval excludes 0, else 'level'."""
  if mean - half > 0:
    return 'wins'
  if mean + half < 0:
    return 'loses'
  return 'level'


def fmt_paired(mean: float, half: float) -> str:
  return (f'{mean:+.3f} [{mean - half:+.3f}, {mean + half:+.3f}] '
          f'{verdict(mean, half)}')
