"""lgrec estimators."""

from .bpr import BPRMF
from .lightgcn import LightGCN

__all__ = ["BPRMF", "LightGCN"]
