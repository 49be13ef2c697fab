"""Models behind one registry: ``create_model(name, ...)`` and ``list_models()``."""

from aiecg.models import dual, fcn, inception, resnet  # noqa: F401  (registers the models)
from aiecg.models.heads import ECGModel, FusionHead
from aiecg.models.registry import create_model, list_models, register_model

__all__ = ["ECGModel", "FusionHead", "create_model", "list_models", "register_model"]
