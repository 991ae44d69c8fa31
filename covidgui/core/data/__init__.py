"""Labelled images: class folders, their summary, the reference sources and the locked split."""
