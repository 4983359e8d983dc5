"""The model zoo (PyTorch only): ``create_model(name, num_classes, variant, in_size)``, ``list_models()``.

Importing this package registers every family; see docs/DEV_CONTRACTS.md for the shared API.
"""

from fer_edge.models import faer, han_pff, local_joint, simam_resnet  # noqa: F401  (registers the families)
from fer_edge.models._base import ZooModel
from fer_edge.models._registry import VARIANTS, cam_layer, create_model, list_models, register_model
from fer_edge.models.pretrained import list_pretrained

__all__ = ["VARIANTS", "ZooModel", "cam_layer", "create_model", "list_models", "list_pretrained", "register_model"]
