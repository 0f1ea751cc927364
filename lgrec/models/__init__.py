"""lgrec estimators, and the names the command line knows them by."""

from .baselines import ContentKNN, Popularity
from .bpr import BPRMF
from .lightgcn import LightGCN

MODELS = {
    "pop": Popularity,
    "content": ContentKNN,
    "bpr": BPRMF,
    "lightgcn": LightGCN,
}

__all__ = ["BPRMF", "MODELS", "ContentKNN", "LightGCN", "Popularity"]
