"""One path from a file to a complete result, for one image or a whole folder."""
