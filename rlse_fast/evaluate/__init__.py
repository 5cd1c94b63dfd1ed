"""`rlse-fast eval`: score super-resolution methods on a folder of faces and write a report.

- `runner`: the loop (faces x scales x methods -> metrics.csv, sample images), resumable.
- `frames`: face frames (FFHQ, CelebA) and the similarity warp that moves a generator's faces into
  the test set's frame.
- `stats`: means with 95% Student-t intervals, paired differences.
- `report`: summary.md, report.html and its charts.
"""
from .runner import METHODS, EvalOptions, run_eval

__all__ = ["METHODS", "EvalOptions", "run_eval"]
