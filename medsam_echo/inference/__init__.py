"""Inference: the predictor behind the notebooks and ``medsam-echo predict``.

``EchoPredictor.from_source(src)`` builds one from a training run, any checkpoint or ``baseline:ellipse``;
see :mod:`medsam_echo.inference.predictor`.
"""

from medsam_echo.inference.predictor import EchoPredictor, Prediction, Segmentation

__all__ = ["EchoPredictor", "Prediction", "Segmentation"]
