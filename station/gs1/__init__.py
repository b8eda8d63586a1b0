"""The reading core, pure and shared by both wings: raw scan -> GS1 element string -> karekod -> verdict.

``reasons`` is the one vocabulary of refusals; ``elements`` the GS1 mechanics (AIs, check digits,
dates, character set 82); ``reader`` turns raw scanner bytes into a karekod; ``verdict`` judges it
against a site's dating policy. Nothing here does I/O or raises on bad input.
"""
