"""A model on disk: its card, its companion files, the user's versions."""
