"""Karekod Station: scan GS1 DataMatrix karekods and report them to ÜTS and İTS."""

__version__ = "0.1.0"
