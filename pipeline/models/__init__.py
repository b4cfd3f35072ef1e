"""Models: loading (`load`), tiny-model builders (`tiny`), chat templates, and the parts of a VLM (`parts`).

`from pipeline.models import load_model_and_processor` (the path documented before this package existed) still
works for one release, with a DeprecationWarning naming the new path.
"""

import warnings

_MOVED_TO_LOAD = {
    "load_model_and_processor",
    "load_processor",
    "load_image_processor",
    "save_model_folder",
    "family_of",
    "family_of_model",
    "set_pixel_budget",
    "FAMILIES",
}


def __getattr__(name: str):
    if name in _MOVED_TO_LOAD:
        warnings.warn(
            f"pipeline.models.{name} moved to pipeline.models.load.{name}; the old path goes away in the next release",
            DeprecationWarning,
            stacklevel=2,
        )
        from pipeline.models import load

        return getattr(load, name)
    raise AttributeError(f"module 'pipeline.models' has no attribute '{name}'")
