"""``Parameter``: a leaf tensor that a Module registers and an optimizer updates."""
from ..core.tensor import Tensor


class Parameter(Tensor):
    """A trainable leaf; ``requires_grad`` False means frozen."""

    def __init__(self, data, requires_grad: bool = True):
        super().__init__(data.data if isinstance(data, Tensor) else data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter(" + super().__repr__() + ")"
