"""sweepsim: a fast, vectorised simulator of LLM inference serving clusters (SplitwiseSim semantics)."""
from pathlib import Path

__version__ = "0.1.0"

#: The project root (shipped configs/, data/, traces/).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
