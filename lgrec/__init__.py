"""lgrec: CPU-first multimodal recommendation."""

__version__ = "0.1.0"
