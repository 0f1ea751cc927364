"""Numba kernels of lgrec, installed as ``lgrec.kernels``.

Plain functions on arrays, compiled on first use and cached on disk
(``cache=True``); nothing here is compiled per call.
"""

from .bpr import bpr_adam_epoch, bpr_sgd_epoch
from .optim import accumulate_rows, adam_dense, adam_rows
from .sampling import sample_negatives
from .sparse import csr_lookup
from .spmm import csr_matmul, csr_matmul_rows, csr_matmul_rows_adjoint
from .topk import hits_in_sorted, topk_exclude, topk_exclude_serial

__all__ = [
    "accumulate_rows",
    "adam_dense",
    "adam_rows",
    "bpr_adam_epoch",
    "bpr_sgd_epoch",
    "csr_lookup",
    "csr_matmul",
    "csr_matmul_rows",
    "csr_matmul_rows_adjoint",
    "hits_in_sorted",
    "sample_negatives",
    "topk_exclude",
    "topk_exclude_serial",
]
