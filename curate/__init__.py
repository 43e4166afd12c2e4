"""curate: data-quality curation and ablation for reasoning SFT (generate, label, store, mix, train, evaluate)."""
from curate.records import Problem, Sample, Verdict

__version__ = "0.1.0"
__all__ = ["Problem", "Sample", "Verdict", "__version__"]
