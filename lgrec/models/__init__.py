"""lgrec estimators, and the names the command line knows them by."""

from .baselines import ContentKNN, Popularity
from .bpr import BPRMF
from .freedom import FREEDOM
from .lightgcn import LightGCN
from .rlmm import RLMultimodalRec
from .vbpr import VBPR

MODELS = {
    "pop": Popularity,
    "content": ContentKNN,
    "bpr": BPRMF,
    "lightgcn": LightGCN,
    "vbpr": VBPR,
    "freedom": FREEDOM,
    "rlmm": RLMultimodalRec,
}

__all__ = ["BPRMF", "FREEDOM", "MODELS", "ContentKNN", "LightGCN", "Popularity", "RLMultimodalRec", "VBPR"]
