"""SparkTrainer: an event-driven training job runner on Kafka and S3."""

__version__ = "0.1.0"
