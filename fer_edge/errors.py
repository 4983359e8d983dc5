"""Typed errors: every failure a user can cause names its problem and, where possible, the fix.

All derive from :class:`FerEdgeError` so callers can catch the SDK's errors in one place;
each also derives from the closest built-in (``ValueError``, ``FileNotFoundError``, ...) so
generic handlers keep working.
"""


class FerEdgeError(Exception):
    """Base class of every error raised on purpose by fer_edge."""


class InvalidInputError(FerEdgeError, ValueError):
    """A frame, crop or tensor has the wrong type, dtype, shape or channel count."""


class ImageReadError(FerEdgeError, ValueError):
    """A file exists but is empty, truncated or not a decodable image/video."""


class ModelNotFoundError(FerEdgeError, FileNotFoundError):
    """A model id, checkpoint, ONNX file or package path does not exist."""


class PackageError(FerEdgeError, ValueError):
    """A model package's sidecar is missing, malformed, or disagrees with its file."""


class ChecksumMismatchError(PackageError):
    """The model file's sha256 differs from the one its sidecar recorded."""


class EngineMismatchError(PackageError):
    """A TensorRT engine was built for another TensorRT version or GPU: rebuild it here."""


class PluginLibraryError(FerEdgeError, RuntimeError):
    """The fer_edge TensorRT plugin library is needed but cannot be found or loaded."""


class BackendUnavailableError(FerEdgeError, RuntimeError):
    """The requested backend (TensorRT, ONNX Runtime, PyTorch) is not installed or usable here."""


class DatasetError(FerEdgeError, ValueError):
    """A dataset path has no usable images or a label file in an unexpected format."""


class ExportError(FerEdgeError, RuntimeError):
    """Export, graph surgery, quantization or an engine build failed or missed its tolerance."""


class RequestError(FerEdgeError, ValueError):
    """A request to ``fer-edge serve`` was refused: ``status`` is the HTTP status, ``code`` a stable name.

    Clients branch on ``code`` (``empty_body``, ``not_an_image``, ``too_large``, ...), never on the
    message, so messages can improve without breaking anyone.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code
