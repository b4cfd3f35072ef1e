"""The one interface every generation backend implements, and the pieces they share."""

from __future__ import annotations

import base64
import hashlib
import io
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from PIL import Image

from pipeline.config import check_ranges
from pipeline.data.images import fit_pixels


@dataclass
class Replica:
    """One server of a role that has several (`base_url` as a list): its URL and, when it differs from the role's
    `max_concurrency`, how many requests it takes at once."""

    base_url: str = ""
    max_concurrency: int | None = None

    def __post_init__(self):
        check_ranges(self, max_concurrency=(1, None))


@dataclass
class BackendConfig:
    """One model to generate with: where it runs and how it is asked."""

    backend: str = "transformers"  # openai | vllm | transformers
    model: str = ""  # served model name (openai), checkpoint path or hub id (vllm, transformers)
    # openai: e.g. http://127.0.0.1:8000/v1, or several replicas of one model: a list of URLs or of
    # {base_url, max_concurrency}; each request goes to the one with the fewest outstanding (see replicas.py)
    base_url: list[Replica | str] | str | None = None  # (the list first: its errors are the ones worth showing)
    api_key_env: str | None = None  # NAME of the environment variable holding the key (never the key)
    max_concurrency: int = 8  # requests in flight at once, per replica when base_url lists several
    replica_fail_limit: int = 3  # failures in a row after which one replica of several is rested
    replica_rest_s: float = 30.0  # its first rest; doubled at each failed probe after one, up to 16x
    timeout_s: float = 600.0
    max_retries: int = 6
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    max_pixels: int = 1280 * 28 * 28  # images are resized to fit before upload
    image_detail: str | None = None  # OpenAI-style image detail (auto | low | high); None sends none
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 4096
    seed: int | None = None
    extra_body: dict = field(default_factory=dict)  # passed through to the server (e.g. chat_template_kwargs)
    stream: bool = False  # openai: receive the answer as it is written (long reasoning behind idle-timeout proxies)
    # vllm offline
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None
    batch_size: int = 64
    # transformers in-process
    device: str = "cpu"
    dtype: str = "float32"

    def __post_init__(self):
        if self.backend not in ("openai", "vllm", "transformers"):
            raise ValueError(f"backend '{self.backend}' unknown; use openai, vllm or transformers")
        if self.backend == "openai" and not self.base_url:
            raise ValueError("backend openai needs base_url (e.g. http://127.0.0.1:8000/v1, or a list of them)")
        if isinstance(self.base_url, list):  # built in code rather than loaded: mappings become Replicas here
            self.base_url = [Replica(**item) if isinstance(item, dict) else item for item in self.base_url]
        if self.base_url:
            urls = [url for url, _ in self.replicas()]
            for i, url in enumerate(urls):
                if not url.startswith(("http://", "https://")):
                    key = "base_url" if isinstance(self.base_url, str) else f"base_url[{i}]"
                    raise ValueError(f"{key} '{url}' must start with http:// or https://")
            if len(set(urls)) < len(urls):
                raise ValueError(f"base_url lists a server twice: {sorted(u for u in urls if urls.count(u) > 1)[0]}")
        check_ranges(
            self,
            max_concurrency=(1, None),
            replica_fail_limit=(1, None),
            replica_rest_s=(0, None),
            timeout_s=(0.001, None),
            max_retries=(0, None),
            backoff_base_s=(0, None),
            backoff_max_s=(0, None),
            max_pixels=(1, None),
            temperature=(0, 2),
            top_p=(0.001, 1),
            max_tokens=(1, None),
            tensor_parallel_size=(1, None),
            gpu_memory_utilization=(0.01, 1),
            max_model_len=(1, None),
            batch_size=(1, None),
        )
        if self.image_detail not in (None, "auto", "low", "high"):
            raise ValueError(f"image_detail '{self.image_detail}' unknown; use auto, low or high (or leave it out)")

    def replicas(self) -> list[tuple[str, int]]:
        """(URL, cap) of every server of the role: one for a plain `base_url`."""
        if not self.base_url:
            return []
        items = [self.base_url] if isinstance(self.base_url, str) else self.base_url
        return [
            (item, self.max_concurrency)
            if isinstance(item, str)
            else (item.base_url, item.max_concurrency or self.max_concurrency)
            for item in items
        ]

    def sampling(self) -> dict:
        return {"temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens, "seed": self.seed}

    def request_settings(self) -> dict:
        """Every setting that changes what is asked (besides the model, the prompt and the images): a stored
        answer is reused only when these are unchanged."""
        return {
            "max_pixels": self.max_pixels,
            "image_detail": self.image_detail,
            **self.sampling(),
            "extra_body": self.extra_body,
        }


@dataclass
class ChatRequest:
    """A single-turn request: text plus 0..n local images, in that order in the user message."""

    text: str
    images: list[Path] = field(default_factory=list)
    key: str = ""  # stable id of the request (used to seed local sampling)
    priority: int = 0  # among requests queued for a server, higher goes first (later pipeline steps)


@dataclass
class Completion:
    text: str
    reasoning: str | None
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    attempts: int
    model: str

    def as_dict(self) -> dict:
        return asdict(self)


class GenerationError(Exception):
    """A request that failed for good; `reason` is safe to store (no secrets)."""

    def __init__(self, reason: str, attempts: int = 1):
        super().__init__(reason)
        self.reason = reason
        self.attempts = attempts


class ChatBackend(Protocol):
    cfg: BackendConfig
    model: str
    max_concurrency: int

    async def complete(self, request: ChatRequest) -> Completion: ...

    async def aclose(self) -> None: ...


@lru_cache(maxsize=512)
def image_data_url(path: str, max_pixels: int) -> str:
    """The image as a base64 data URL, resized to at most `max_pixels` (JPEG sources stay JPEG, others PNG)."""
    with Image.open(path) as im:
        fmt = "JPEG" if im.format == "JPEG" else "PNG"
        im = fit_pixels(im.convert("RGB"), max_pixels)
        buf = io.BytesIO()
        im.save(buf, format=fmt, quality=92) if fmt == "JPEG" else im.save(buf, format=fmt)
    mime = "image/jpeg" if fmt == "JPEG" else "image/png"
    return f"data:{mime};base64," + base64.b64encode(buf.getvalue()).decode()


def image_part(path: Path, cfg: BackendConfig) -> dict:
    """One image of a chat message, OpenAI style, resized to the budget."""
    image_url = {"url": image_data_url(str(path), cfg.max_pixels)}
    if cfg.image_detail:
        image_url["detail"] = cfg.image_detail
    return {"type": "image_url", "image_url": image_url}


def request_seed(request: ChatRequest, seed: int | None) -> int:
    blob = f"{seed}:{request.key}:{request.text}".encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "little")
