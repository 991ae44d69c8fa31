"""The few exceptions a user can cause. Their messages are written for a clinician to read."""


class CovidGUIError(Exception):
    """Base class: a problem the user can understand and fix (bad file, missing model, ...)."""


class ImageLoadError(CovidGUIError):
    """An image file could not be read. ``path`` names the file, the message says why."""

    def __init__(self, path, reason: str):
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class ModelError(CovidGUIError):
    """The model file or its model card is missing, unreadable or inconsistent."""


class DatasetError(CovidGUIError):
    """A training or evaluation folder cannot be used as it is (empty, one class, ...)."""
