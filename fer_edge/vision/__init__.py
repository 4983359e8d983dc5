"""Face detection, alignment and preprocessing, shared by runtime, calibration and training."""
