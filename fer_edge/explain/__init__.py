"""Why a model said what it said: Grad-CAM heatmaps of aligned faces (PyTorch only; ``fer-edge explain``).

``explain(model, crops)`` returns one :class:`Explanation` (heatmap array sized like the crop, the
explained class, the probabilities) per crop. Importing this package imports torch, so the runtime
and the CLI import it only when asked to explain.
"""

from fer_edge.explain.api import Explanation, explain, heat_fraction, load_model, spec_of
from fer_edge.explain.cam import METHODS, class_activation_maps, find_layer

__all__ = ["METHODS", "Explanation", "class_activation_maps", "explain", "find_layer", "heat_fraction", "load_model",
           "spec_of"]
