"""Benchmarks: our training engine against a MedSAM-style baseline (``medsam-echo bench``)."""
