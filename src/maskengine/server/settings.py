"""Settings of the annotation server: one frozen, validated class (CLI options come from it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import MODEL_CONFIGS


@dataclass(frozen=True)
class ServerSettings:
    host: str = field(default="127.0.0.1", metadata={"help": "address to listen on"})
    port: int = field(default=8000, metadata={"help": "port to listen on"})
    model: str = field(default="tiny", metadata={"help": "registered model size"})
    model_config: str | None = field(
        default=None, metadata={"help": "SamConfig JSON file (instead of --model)"}
    )
    checkpoint: str | None = field(
        default=None, metadata={"help": "weights; default: the project's promoted model, "
                                        "else the bundled weights of --model"}
    )
    device: str = field(default="cpu", metadata={"help": "torch device"})
    db: str | None = field(
        default=None, metadata={"help": "database URL overriding the project's"}
    )
    prefetch: int = field(
        default=3, metadata={"help": "embeddings computed ahead for the next N images"}
    )
    memory_cache: int = field(
        default=16, metadata={"help": "embeddings kept in memory (the rest on disk)"}
    )
    focus: bool | None = field(default=None, metadata={
        "help": "answer small masks again on a zoomed crop around them (maskengine.focus; "
                "default: on for models with an input under 1024, like the bundled tiny)"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0: torch default)"})
    model_poll: float = field(default=2.0, metadata={
        "help": "seconds between checks for a newly promoted model (0: no checks; a round "
                "started from this server's page still switches)"})
    keep_versions: int = field(default=2, metadata={
        "help": "model versions whose embeddings stay cached on disk, the served one included"})
    max_body_bytes: int = field(default=4 * 1024 * 1024, metadata={
        "help": "largest request body accepted (bigger: 413)"})

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, got {self.port}")
        if self.model_config is None and self.model not in MODEL_CONFIGS:
            raise ValueError(f"model must be one of {', '.join(MODEL_CONFIGS)}, got {self.model!r}")
        if self.keep_versions < 1:
            raise ValueError(f"keep_versions must be >= 1, got {self.keep_versions}")
        if self.model_poll < 0:
            raise ValueError(f"model_poll must be >= 0, got {self.model_poll}")
        if self.max_body_bytes < 1024:
            raise ValueError(f"max_body_bytes must be >= 1024, got {self.max_body_bytes}")
        if self.prefetch < 0 or self.memory_cache < 1 or self.threads < 0:
            raise ValueError("prefetch and threads must be >= 0, memory_cache >= 1")
