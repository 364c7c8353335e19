"""One settings object, read from the environment (prefix ``SPARKTRAINER_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

HANG_FLOOR_MIN_S = 1.0  # four beats of the training loop (training/job/heartbeat.py)


class Limits(BaseSettings):
    """Resource caps: a job beyond any of them is rejected before anything is allocated.

    Each is ``SPARKTRAINER_MAX_<NAME>``; the README's "Security and limits" lists them all.
    The validator checks them, and the trainer checks them again on every job it takes.
    """

    model_config = SettingsConfigDict(env_prefix="SPARKTRAINER_MAX_", extra="ignore")

    # What a job asks for, field by field
    epochs: int = Field(default=1000, description="Epochs of one job")
    batch_size: int = Field(default=4096, description="Samples per batch")
    learning_rate: float = Field(default=10.0, description="Learning rate")
    gradient_accumulation_steps: int = Field(
        default=1024, description="Micro-batches per optimizer step"
    )
    job_runtime_s: float = Field(
        default=7 * 24 * 3600.0,
        description="Seconds one job may run (its own max_runtime_s is capped)",
    )
    hidden_units: int = Field(
        default=65536, description="Width of an MLP layer, channels of a ResNet stage"
    )
    layers: int = Field(default=64, description="MLP hidden layers, ResNet blocks")
    num_classes: int = Field(default=100_000, description="Classes (output_size, num_classes)")
    input_size: int = Field(
        default=10_000_000, description="Values per sample (MLP input_size, C*H*W of an image)"
    )
    image_side: int = Field(default=4096, description="Height or width of an input_shape")
    image_channels: int = Field(default=64, description="Channels of an input_shape")
    sequence_length: int = Field(default=8192, description="Tokens per text (max_length)")
    lora_r: int = Field(default=512, description="LoRA rank")
    world_size: int = Field(default=8, description="DDP processes one job may ask for")
    seed: int = Field(default=2**32 - 1, description="A seed (config.seed, data.seed)")
    dataset_samples: int = Field(default=10_000_000, description="Samples (data.num_samples)")
    # What a job asks of its trainer (resources) and what a sweep asks for
    gpus: int = Field(default=8, description="GPUs of one node one job may ask for")
    gpu_memory_gib: float = Field(
        default=1024.0, description="Memory (GiB) one of those GPUs must have"
    )
    sweep_trials: int = Field(
        default=1000, description="Trials of one sweep (also bounds a trial's number)"
    )
    sweep_concurrency: int = Field(default=64, description="Trials of one sweep running at once")
    sweep_parameters: int = Field(default=16, description="Parameters of a sweep's space")
    sweep_choices: int = Field(
        default=64, description="Values of one sweep parameter (a choice, an int range's steps)"
    )
    sweep_grid_points: int = Field(default=100_000, description="Points of a sweep's grid space")
    # What a job is estimated to cost (contracts/estimates.py)
    model_parameters: int = Field(
        default=2_000_000_000,
        description="Estimated model parameters (also checked by the trainer)",
    )
    job_memory_bytes: int = Field(
        default=32 * 2**30,
        description="Estimated memory of a job: weights, gradients, optimizer, activations, data",
    )
    data_bytes: int = Field(
        default=8 * 2**30,
        description="Training data in memory; an S3 data object above it is refused unread",
    )
    # The shape of the submission itself
    submission_bytes: int = Field(
        default=256 * 1024, description="Bytes of one submission (and API body)"
    )
    string_chars: int = Field(default=4096, description="Characters of any string in a submission")
    list_items: int = Field(default=1024, description="Items of any list in a submission")
    object_keys: int = Field(default=256, description="Keys of any object in a submission")
    nesting_depth: int = Field(
        default=10, description="Nesting of lists and objects in a submission"
    )
    # What we publish
    message_bytes: int = Field(
        default=1024 * 1024,
        description="Bytes of any event we publish (the broker's message.max.bytes or less)",
    )
    # The model registry
    model_name_chars: int = Field(default=64, description="Characters of a job's register_as")


class Settings(BaseSettings):
    """Everything a SparkTrainer process needs to reach Kafka, S3 and its own data."""

    model_config = SettingsConfigDict(env_prefix="SPARKTRAINER_", extra="ignore")

    # Kafka
    kafka_bootstrap_servers: str | None = None
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] | None = None
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    topic_partitions: int = Field(default=3, ge=1)
    topic_replication_factor: int = Field(default=1, ge=1)
    # The log is the source of truth (rebuild, replay): keep it unless told otherwise.
    topic_retention_ms: int = -1
    kafka_session_timeout_ms: int = 10_000
    kafka_heartbeat_interval_ms: int = 3_000
    kafka_max_poll_interval_ms: int = 300_000
    kafka_max_request_bytes: int = 16 * 1024 * 1024
    # aiokafka has one produce request in flight per broker, carrying at most one batch per
    # partition: its 16 KB default capped a producer at ~10 answers per partition per round
    # trip. Under Kafka's default 1 MiB message.max.bytes.
    kafka_max_batch_bytes: int = 512 * 1024

    # S3
    s3_endpoint: str | None = None
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    s3_bucket: str = "sparktrainer"
    s3_secure: bool = False
    s3_region: str = "us-east-1"
    s3_retry_attempts: int = 6
    s3_retry_backoff_s: float = 0.5
    s3_connect_timeout_s: float = 10.0
    s3_read_timeout_s: float = 60.0  # per socket read, not per transfer

    # Local state (embedded stack data, registry read model)
    home: Path = Path("./.sparktrainer")
    registry_db: Path | None = None
    # Where the embedded stack's `weed` and `tansu` are, when not the pip packages' own
    # (when set, only there: an empty folder makes the stack "not installed").
    embedded_bin_dir: Path | None = None

    # Consumers
    # Records in flight (validating or awaiting acks): throughput ~ this / ack latency, and an
    # ack on tansu's S3-backed log takes tens of ms, so 32 capped a validator near 1,000/s.
    validator_concurrency: int = Field(default=256, ge=1)
    # Records the validator answers in one call (one thread hop, one wait for their acks):
    # concurrency / this many batches run at once.
    validator_batch_records: int = Field(default=32, ge=1)
    checkpoint_every_steps: int = Field(default=0, ge=0)
    # Starts of one job, counted before each start (a worker OOM-killed or segfaulting, a trainer
    # killed); each resumes from the last checkpoint, and the start past this ends the job failed.
    job_max_attempts: int = Field(default=3, ge=1)
    # Cancels for jobs not seen yet: kept this long and at most this many (oldest dropped).
    cancel_memory_s: float = Field(default=7 * 24 * 3600.0, gt=0)
    cancel_memory_entries: int = Field(default=10_000, ge=1)

    # The training worker (one per trainer): what one job may take of the machine.
    # RSS of the worker and its DDP ranks together; None: 80% of the machine's memory.
    worker_memory_budget_bytes: int | None = Field(default=None, gt=0)
    worker_cuda_memory_fraction: float = Field(default=0.9, gt=0, le=1)  # of each GPU
    # After a cancel or the time limit, how long a job may take to stop before it is killed
    # (a job stuck in a download cannot check its stop flag).
    worker_stop_grace_s: float = Field(default=15.0, gt=0)
    # On SIGTERM (or the notice file) the running job checkpoints at its next optimizer step and
    # uploads it within this budget, then the trainer exits; past it the worker is killed and the
    # next owner resumes from the last periodic checkpoint. Keep it below the platform's notice
    # (k8s terminationGracePeriodSeconds, a spot VM's 30 s) minus a few seconds to exit.
    preempt_grace_s: float = Field(default=20.0, gt=0)
    # A file a spot-termination handler (or a preStop hook) creates: its appearance stops the
    # trainer as SIGTERM does. Empty: no notice file is watched.
    preempt_notice_file: str = ""
    # Priority preemption (contracts/preemption.py): a waiting job of a higher priority than the
    # running one that has waited this long stops it the checkpoint-on-stop way (0: never); one
    # job is preempted at most preempt_max_per_job times in preempt_window_s.
    preempt_after_s: float = Field(default=300.0, ge=0)
    preempt_max_per_job: int = Field(default=2, ge=0)
    preempt_window_s: float = Field(default=3600.0, gt=0)
    # The hang watchdog (training/worker/hang.py): a job with no batch and no optimizer step for
    # max(floor, factor x its median step time) is killed as hung (its Python stacks in its log)
    # and retried from its checkpoint; before its first step the allowance is max(floor,
    # warm-up): setup, downloads, model load. A floor of 0 turns the watchdog off.
    hang_floor_s: float = Field(default=300.0, ge=0)
    hang_step_factor: float = Field(default=20.0, ge=1)
    hang_warmup_s: float = Field(default=1800.0, ge=0)
    cpu_max_world_size: int = Field(default=2, ge=1)  # DDP processes on a trainer without GPUs
    # Each attempt's stdout, stderr and logging (jobs/{id}/logs/attempt-{n}.log): at most this
    # many bytes are kept (its head and tail), uploaded with each checkpoint, at most this often
    # while it reports progress, and at the attempt's end.
    job_log_max_bytes: int = Field(default=4 * 2**20, ge=4096)
    job_log_upload_every_s: float = Field(default=30.0, gt=0)

    # What jobs may read. Comma-separated bucket names jobs may take data from (empty: the
    # deployment's own bucket, S3_BUCKET); never the embedded broker's log bucket.
    data_buckets: str = ""
    # Comma-separated folders under which model_source "local" may name a model (empty: none).
    local_model_roots: str = ""
    progress_every_s: float = 1.0
    # Pretrained torchvision weights an operator provides: manifest.json of {model: {file,
    # sha256}} beside the files (training/pytorch/pretrained.py); else torchvision's cache.
    pretrained_weights_dir: Path | None = None

    # Scheduling (docs/ARCHITECTURE.md, "Scheduling"). The classes a trainer serves: a comma
    # list (e.g. "gpu,cpu"); unset, from its devices (plus cpu unless it takes no CPU jobs).
    trainer_classes: str | None = None
    trainer_takes_cpu_jobs: bool = True
    # A waiting job rises one priority level per this many seconds waited (0: never).
    schedule_aging_s: float = Field(default=300.0, ge=0)
    schedule_priorities: bool = True  # false: oldest first, whatever the priority
    # With tenants, a tenant's fair share is its trainer- and GPU-seconds over this window
    # (0: its running jobs at the instant), and a trainer keeps fetching a partition until
    # this many of its records wait, so the pick sees each tenant's next jobs (ARCHITECTURE
    # "Quotas and weighted fair share").
    schedule_fair_window_s: float = Field(default=3600.0, ge=0)
    schedule_lookahead_records: int = Field(default=32, ge=1, le=1024)
    trainer_heartbeat_s: float = Field(default=10.0, gt=0)
    # Every reader refuses an event holding a time more than this past its record's broker
    # time (contracts/records.py check_instants): the clock skew a producer is allowed.
    event_time_ahead_max_s: float = Field(default=300.0, gt=0)

    # The model registry
    # A deleted model's files stay this long (jobs validated before the delete still train
    # from them); then a trainer's janitor removes them. Every trainer sweeps this often.
    model_delete_grace_s: float = Field(default=24 * 3600.0, ge=0)
    janitor_interval_s: float = Field(default=60.0, gt=0)
    # The validator catches its registry view up with the log before resolving a fine-tune's
    # parent; a catch-up that began at most this long before the job is good enough.
    validator_registry_staleness_s: float = Field(default=0.0, ge=0)
    validator_registry_timeout_s: float = Field(default=30.0, gt=0)

    # Tenants (contracts/tenants.py): the file listing them, their quotas and credentials
    # (JSON, or TOML by suffix); unset: one default tenant with every right
    tenants_file: Path | None = None
    # The tenant a process with no credential of its own acts for: the CLI's registry changes
    # (an operator's tool: Kafka's ACLs trust it to write models.changes). A name in that file.
    tenant: str = Field(default="default", min_length=1, max_length=63)

    # HTTP API (the dashboard at /, Prometheus metrics at /metrics)
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    api_token: SecretStr | None = None
    api_open_reads: bool = False  # with a token: leave GET requests open to everyone
    # Host headers the API answers (comma-separated, '*': any); others get 421, so a page
    # on a rebound DNS name cannot reach it. Default: the bind address and localhost.
    api_allowed_hosts: str = ""

    # Operator metrics: each consumer serves Prometheus text on its own port (0: off)
    metrics_host: str = "127.0.0.1"
    validator_metrics_port: int = Field(default=0, ge=0, le=65535)
    trainer_metrics_port: int = Field(default=0, ge=0, le=65535)
    projector_metrics_port: int = Field(default=0, ge=0, le=65535)
    sweep_controller_metrics_port: int = Field(default=0, ge=0, le=65535)

    log_level: str = "INFO"
    limits: Limits = Field(default_factory=Limits)

    @field_validator("api_token")
    @classmethod
    def _no_empty_token(cls, token: SecretStr | None) -> SecretStr | None:
        """An empty token would let an empty ``Authorization: Bearer`` in: refuse to start."""
        if token is not None and not token.get_secret_value().strip():
            raise ValueError(
                "SPARKTRAINER_API_TOKEN is set but empty: set a long random token, or unset it "
                "to run without one"
            )
        return token

    @field_validator("hang_floor_s")
    @classmethod
    def _floor_above_beats(cls, floor_s: float) -> float:
        """The loop beats every quarter second at most: a shorter floor would see hangs that
        are not there."""
        if 0 < floor_s < HANG_FLOOR_MIN_S:
            raise ValueError(
                f"SPARKTRAINER_HANG_FLOOR_S={floor_s:g} is below {HANG_FLOOR_MIN_S:g} s: "
                "set at least that, or 0 to turn the hang watchdog off"
            )
        return floor_s

    @property
    def registry_db_path(self) -> Path:
        """Where the registry projector keeps its SQLite read model."""
        return self.registry_db or self.home / "registry.sqlite3"

    def kafka_ready(self) -> str:
        """Bootstrap servers, or a clear error when none are known."""
        if not self.kafka_bootstrap_servers:
            from sparktrainer.errors import ConfigurationError

            raise ConfigurationError(
                "No Kafka brokers configured: set SPARKTRAINER_KAFKA_BOOTSTRAP_SERVERS "
                "or start the embedded stack with `sparktrainer up`."
            )
        return self.kafka_bootstrap_servers
