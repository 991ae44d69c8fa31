"""Reading and writing files: X-ray images and DICOM, atomic writes, the log file."""
