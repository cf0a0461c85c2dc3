"""glassbox: governed infrastructure change for AI agents."""

__version__ = "0.1.0"
