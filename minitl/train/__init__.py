"""Training: ``fit`` / ``evaluate``, the ``History`` of a run, progress, checkpoints."""
from .checkpoint import load_checkpoint, save_checkpoint
from .history import History
from .loop import TrainState, evaluate, fit

__all__ = ["fit", "evaluate", "History", "TrainState", "save_checkpoint", "load_checkpoint"]
