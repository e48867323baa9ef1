"""Long-running services: the watched folder (and, later, the DICOM node)."""
