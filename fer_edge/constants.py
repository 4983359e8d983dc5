"""Names shared by every layer: the expression classes and their canonical order.

Every dataset reader maps its own label order onto these tuples explicitly, every model
emits logits in this order, and every sidecar records the tuple it was trained with.
"""

from pathlib import Path

SHIPPED_MODELS_DIR = Path(__file__).resolve().parent / "data" / "models"  # packages inside fer_edge

EXPRESSIONS_7: tuple[str, ...] = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger")
EXPRESSIONS_8: tuple[str, ...] = EXPRESSIONS_7 + ("contempt",)


def classes_for(num_classes: int) -> tuple[str, ...]:
    """Return the canonical class names for a 7- or 8-class model."""
    if num_classes == 7:
        return EXPRESSIONS_7
    if num_classes == 8:
        return EXPRESSIONS_8
    raise ValueError(f"num_classes must be 7 or 8 (the SDK's expression sets), got {num_classes}")
