"""DICOM ingestion: discover studies, select the CTA series, load it as an HU volume."""
