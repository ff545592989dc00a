"""Exceptions raised by the ROS-free core.

Nodes catch these at the callback boundary, log them with context, count them in diagnostics and
keep running. Each one carries a message a user can act on.
"""


class SpatialCaptionError(Exception):
    """Base class of every error the core raises on purpose."""


class InvalidInputError(SpatialCaptionError):
    """An input message or array cannot be used (bad encoding, size mismatch, empty image...)."""


class InvalidImageError(InvalidInputError):
    """An image buffer does not match its declared size, step or encoding."""


class OutOfOrderError(InvalidInputError):
    """A frame stamped earlier than one already accepted (late, reordered delivery)."""


class InvalidCameraInfoError(InvalidInputError):
    """Camera intrinsics that cannot be used for 3D (zero focal length, NaN, wrong size)."""


class ConfigError(SpatialCaptionError):
    """A parameter value that is out of range or inconsistent with another one."""


class ModelError(SpatialCaptionError):
    """A model file is missing, unreadable or does not have the expected inputs and outputs."""


class ModelNotFoundError(ModelError):
    """A model file does not exist; the message says what is missing and how to get it."""


class StaleEngineError(ModelError):
    """A TensorRT engine was built for another TensorRT version, GPU, input shape or model."""


class BackendError(SpatialCaptionError):
    """An inference backend failed while running a model."""


class BackendUnavailableError(BackendError):
    """The requested inference backend cannot run on this machine (no GPU, package missing)."""


class CaptionError(SpatialCaptionError):
    """Caption generation failed (LLM load or generation error, timeout)."""
