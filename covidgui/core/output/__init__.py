"""How a result is shown: words, flags, colours, overlays, the PDF report."""
