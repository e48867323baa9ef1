"""What a triage leaves behind: result.json, the timing log, the key image (PNG and DICOM
Secondary Capture) and the DICOM SR (later: webhook)."""
