"""lgrec: CPU-first multimodal recommendation.

Gated image/text fusion on LightGCN (RLMultimodalRec) with BPR-MF, LightGCN,
VBPR and FREEDOM baselines, MMRec-compatible evaluation and Numba kernels.
"""

__version__ = "0.1.0"

from ._base import DataWarning, ModelFitError, NotFittedError
from .data import Dataset, load_mmrec, save_mmrec
from .evaluation import evaluate
from .models import BPRMF, FREEDOM, VBPR, ContentKNN, LightGCN, Popularity, RLMultimodalRec
from .models.rlmm import fit, gate_summary
from .prepare import prepare

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
    "prepare",
    "load_mmrec",
    "save_mmrec",
    "__version__",
]
