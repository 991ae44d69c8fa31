"""CovidGUI: a local, explainable second opinion on chest X-rays (COVID-19 vs normal).

Research use only; not a diagnostic device.
"""

__version__ = "0.1.0"

DISCLAIMER = "Research use only, not a diagnostic device."
