"""Array helpers shared by the evaluation metrics."""
import numpy as np


def to_numpy(x) -> np.ndarray:
    """A tensor (any device) or array-like as a numpy array."""
    if hasattr(x, 'detach'):
        x = x.detach().cpu().numpy()
    return np.asarray(x)
