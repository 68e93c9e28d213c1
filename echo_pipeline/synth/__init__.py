"""Synthetic echo cohort: DICOM clips, reports and ground truth for tests and the demo."""
