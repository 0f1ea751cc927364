"""lgrec estimators, and the names the command line knows them by."""

from .bpr import BPRMF
from .lightgcn import LightGCN

MODELS = {
    "bpr": BPRMF,
    "lightgcn": LightGCN,
}

__all__ = ["BPRMF", "LightGCN", "MODELS"]
