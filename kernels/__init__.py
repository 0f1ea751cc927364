"""Numba kernels of lgrec, installed as ``lgrec.kernels``."""
