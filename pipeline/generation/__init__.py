"""Teacher backends behind one interface; `make_teacher` builds the configured one (importing only what it needs)."""

from pipeline.generation.base import ChatRequest, Completion, Teacher, TeacherConfig, TeacherError

__all__ = ["ChatRequest", "Completion", "Teacher", "TeacherConfig", "TeacherError", "make_teacher"]


def make_teacher(cfg: TeacherConfig) -> Teacher:
    if cfg.backend == "openai":
        from pipeline.generation.openai_http import OpenAITeacher

        return OpenAITeacher(cfg)
    if cfg.backend == "vllm":
        from pipeline.generation.vllm_offline import VLLMTeacher

        return VLLMTeacher(cfg)
    from pipeline.generation.local import TransformersTeacher

    return TransformersTeacher(cfg)
