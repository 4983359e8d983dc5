"""Reusable layers of the zoo: attention blocks, FP16-safe norms and reductions, ResNet blocks."""
