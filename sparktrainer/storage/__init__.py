"""Object storage: the S3 client wrapper and the key layout."""

from sparktrainer.storage.layout import checkpoint_prefix, model_key, model_prefix
from sparktrainer.storage.s3 import ObjectStore

__all__ = ["ObjectStore", "checkpoint_prefix", "model_key", "model_prefix"]
