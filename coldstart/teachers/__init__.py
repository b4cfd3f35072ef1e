"""Teacher backends behind one interface; `make_teacher` builds the configured one (importing only what it needs)."""

from coldstart.teachers.base import ChatRequest, Completion, Teacher, TeacherConfig, TeacherError

__all__ = ["ChatRequest", "Completion", "Teacher", "TeacherConfig", "TeacherError", "make_teacher"]


def make_teacher(cfg: TeacherConfig) -> Teacher:
    if cfg.backend == "openai":
        from coldstart.teachers.openai_http import OpenAITeacher

        return OpenAITeacher(cfg)
    if cfg.backend == "vllm":
        from coldstart.teachers.vllm_offline import VLLMTeacher

        return VLLMTeacher(cfg)
    from coldstart.teachers.local import TransformersTeacher

    return TransformersTeacher(cfg)
