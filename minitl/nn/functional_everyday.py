"""The everyday functions added beside the original ``nn.functional`` (activations, losses,
``pad``/``one_hot``), gathered so ``functional.py`` re-exports them with one line."""
from .activation_functions import *  # noqa: F401,F403
from .activation_functions import __all__ as _activations
from .loss_functions import *  # noqa: F401,F403
from .loss_functions import __all__ as _losses
from .shape_functions import *  # noqa: F401,F403
from .shape_functions import __all__ as _shapes

__all__ = _activations + _losses + _shapes
