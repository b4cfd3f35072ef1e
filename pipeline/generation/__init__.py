"""Chat generation backends behind one interface, for whoever needs a model to answer (the cold-start teachers,
evaluation): an OpenAI-compatible server, vLLM offline, transformers in-process. `make_backend` builds the
configured one, importing only what it needs."""

from pipeline.generation.base import BackendConfig, ChatBackend, ChatRequest, Completion, GenerationError

__all__ = ["ChatRequest", "Completion", "ChatBackend", "BackendConfig", "GenerationError", "make_backend"]


def make_backend(cfg: BackendConfig) -> ChatBackend:
    if cfg.backend == "openai":
        from pipeline.generation.openai_http import OpenAIBackend

        return OpenAIBackend(cfg)
    if cfg.backend == "vllm":
        from pipeline.generation.vllm_offline import VLLMBackend

        return VLLMBackend(cfg)
    from pipeline.generation.local import TransformersBackend

    return TransformersBackend(cfg)
