"""The zoo's registry: plain dicts, one decorator, one ``create_model`` entry point (as timm).

A family module registers a constructor ``fn(num_classes, variant, in_size, **kw)`` with
:func:`register_model`; :func:`create_model` validates the arguments every model shares, so a
typo fails here with a suggestion instead of deep inside a constructor. Each entry also names
its default Grad-CAM target layer (``@register_model(cam_layer=...)``, see :func:`cam_layer`), so
``fer-edge explain`` needs no per-model code.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Callable
from typing import Any

from fer_edge.errors import InvalidInputError, ModelNotFoundError
from fer_edge.models._base import ZooModel

VARIANTS: tuple[str, ...] = ("paper", "edge")

_entrypoints: dict[str, Callable[..., ZooModel]] = {}
_cam_layers: dict[str, str | None] = {}
ModelFn = Callable[..., ZooModel]


def register_model(fn: ModelFn | None = None, *, cam_layer: str | None = None) -> Any:
    """Register ``fn`` under its function name; a duplicate name warns and replaces the old one.

    Used bare (``@register_model``) or with the model's default Grad-CAM target layer, a dotted
    submodule path that outputs an NCHW map (``@register_model(cam_layer="stages.2")``).
    """

    def register(f: ModelFn) -> ModelFn:
        if f.__name__ in _entrypoints:
            warnings.warn(f"model {f.__name__!r} registered twice; the later definition wins", stacklevel=3)
        _entrypoints[f.__name__] = f
        _cam_layers[f.__name__] = cam_layer
        return f

    return register if fn is None else register(fn)


def cam_layer(name: str) -> str:
    """The default Grad-CAM target layer of model ``name``: the last map fine enough to show eyes
    and mouth apart (at the shipped 48 px, 3x3 or larger), chosen per family in its module."""
    if name not in _entrypoints:
        raise ModelNotFoundError(f"unknown model id {name!r}{_suggest(name, list_models())}")
    layer = _cam_layers.get(name)
    if layer is None:
        raise InvalidInputError(f"model {name!r} declares no Grad-CAM layer; pass one (--layer NAME)")
    return layer


def list_models() -> list[str]:
    """Ids of every registered model, sorted."""
    return sorted(_entrypoints)


def _suggest(word: str, choices: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def parse_size(in_size: int | tuple[int, int] | list[int] | None) -> tuple[int, int] | None:
    """Normalise ``in_size`` (an int or (height, width)) to a tuple; ``None`` stays None."""
    if in_size is None:
        return None
    size = (in_size, in_size) if isinstance(in_size, int) else tuple(in_size)
    if len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size):
        raise InvalidInputError(f"in_size must be a positive int or (height, width), got {in_size!r}")
    return (size[0], size[1])


def create_model(
    name: str,
    num_classes: int = 7,
    variant: str | None = None,
    in_size: int | tuple[int, int] | None = None,
    pretrained: bool = False,
    **kwargs: Any,
) -> ZooModel:
    """Build model ``name`` (see :func:`list_models`) in size ``variant`` ("paper" or "edge").

    ``in_size`` only sets ``default_cfg["in_size"]`` (the size the model is trained, exported
    and benchmarked at); every model accepts other sizes down to its ``min_size``.
    ``pretrained=True`` loads the trained weights shipped with fer_edge (checksum verified; the
    variant defaults to ``edge``, the size they ship in, and ``in_size`` to theirs); without it the
    weights are random and the variant defaults to ``paper``.
    """
    variant = variant or ("edge" if pretrained else "paper")
    if name not in _entrypoints:
        raise ModelNotFoundError(
            f"unknown model id {name!r}{_suggest(name, list_models())} (known: {', '.join(list_models())})"
        )
    if num_classes not in (7, 8):
        raise InvalidInputError(f"num_classes must be 7 or 8 (the SDK's expression sets), got {num_classes!r}")
    if variant not in VARIANTS:
        raise InvalidInputError(f"unknown variant {variant!r}{_suggest(str(variant), VARIANTS)} (known: paper, edge)")
    if not pretrained:
        return _entrypoints[name](num_classes=num_classes, variant=variant, in_size=parse_size(in_size), **kwargs)
    from fer_edge.models.pretrained import pretrained_checkpoint
    from fer_edge.training.checkpoint import recorded_model_kwargs

    checkpoint = pretrained_checkpoint(name, variant)
    if num_classes != checkpoint["num_classes"]:
        raise InvalidInputError(f"the shipped {name} weights have {checkpoint['num_classes']} classes, "
                                f"not num_classes={num_classes}")
    model = _entrypoints[name](num_classes=num_classes, variant=variant,
                               in_size=parse_size(in_size) or tuple(checkpoint["in_size"]),
                               **{**recorded_model_kwargs(checkpoint), **kwargs})
    try:
        model.load_state_dict(checkpoint["state_dict"])  # float16 storage -> the model's float32
    except RuntimeError as exc:
        raise InvalidInputError(f"the shipped {name} weights do not fit this model ({kwargs or 'no'} "
                                f"overrides): {str(exc)[:300]}") from exc
    return model
