"""evaluation stage: metrics in mm (``metrics``), LV volumes and EF (``clinical``), anatomical checks
(``plausibility``), plots and reports, and the ``medsam-echo evaluate`` command (``evaluate``)."""
