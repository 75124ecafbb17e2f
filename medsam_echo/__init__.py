"""medsam-echo: fine-tune Segment Anything models (SAM, MedSAM) on echocardiography."""

__version__ = "0.1.0"
