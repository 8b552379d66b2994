"""The pipeline (retrieve -> read -> merge), settings, the HTTP app and the CLI."""

from service.errors import BadInputError, CiteqaError, NotFoundError, NotReadyError
from service.pipeline import AskResult, Pipeline
from service.settings import Settings

__all__ = [
    "AskResult",
    "BadInputError",
    "CiteqaError",
    "NotFoundError",
    "NotReadyError",
    "Pipeline",
    "Settings",
]
