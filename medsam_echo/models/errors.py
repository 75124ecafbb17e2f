"""Errors raised while reading checkpoints."""


class CheckpointError(ValueError):
    """A checkpoint cannot be read or does not match the model: the message names the file and keys."""
