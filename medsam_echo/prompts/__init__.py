"""Prompt engine: boxes, points, correction clicks, training policies, multi-structure and automatic prompts.

Coordinates are ``(x, y)`` = ``(column, row)`` px of the array given; boxes are XYXY with inclusive max
indices. Every random choice takes an explicit ``numpy.random.Generator``.
"""

from medsam_echo.prompts.boxes import box_from_mask, clip_box, jitter_box
from medsam_echo.prompts.clicks import error_regions, next_click
from medsam_echo.prompts.points import most_interior_point, neighbour_mask, sample_points
from medsam_echo.prompts.prompt_set import Prompts, to_model_inputs

__all__ = [
    "Prompts",
    "box_from_mask",
    "clip_box",
    "error_regions",
    "jitter_box",
    "most_interior_point",
    "neighbour_mask",
    "next_click",
    "sample_points",
    "to_model_inputs",
]
