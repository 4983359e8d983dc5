"""The runtime API: ``Recognizer`` and its result types (see :mod:`fer_edge.recognizer.recognizer`)."""

from fer_edge.recognizer.recognizer import Recognizer, Stream
from fer_edge.recognizer.results import RESULT_SCHEMA, FaceResult, FrameResult
from fer_edge.recognizer.tracking import DetectionPolicy, Smoothing

__all__ = ["RESULT_SCHEMA", "DetectionPolicy", "FaceResult", "FrameResult", "Recognizer", "Smoothing", "Stream"]
