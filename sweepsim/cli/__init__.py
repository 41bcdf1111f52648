"""The ``sweepsim`` command line (click)."""
