"""lgrec: CPU-first multimodal recommendation.

Gated image/text fusion on LightGCN (RLMultimodalRec) with BPR-MF, LightGCN,
VBPR and FREEDOM baselines, MMRec-compatible evaluation and Numba kernels.
"""

__version__ = "0.1.0"

import os as _os

# Numba's OpenMP workers spin after each parallel region by default, stealing the cores that
# scipy's sparse products and BLAS need next; a passive wait is ~12% faster per LightGCN epoch
# here (benchmarks/README.md). Only a default: a value set by the user wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from ._base import DataWarning, ModelFitError, NotFittedError
from .data import Dataset, load_mmrec, save_mmrec
from .evaluation import evaluate
from .models import BPRMF, FREEDOM, VBPR, ContentKNN, LightGCN, Popularity, RLMultimodalRec
from .models.rlmm import fit, gate_summary

__all__ = [
    "BPRMF",
    "ContentKNN",
    "DataWarning",
    "Dataset",
    "FREEDOM",
    "LightGCN",
    "ModelFitError",
    "NotFittedError",
    "Popularity",
    "RLMultimodalRec",
    "VBPR",
    "evaluate",
    "fit",
    "gate_summary",
    "load_mmrec",
    "save_mmrec",
    "__version__",
]
