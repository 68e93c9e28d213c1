"""Synthetic echo cohort: DICOM clips, reports and ground truth for tests and the demo.

The entry point is `echo_pipeline.synth.cohort.generate_cohort(out_dir, patients, seed)`; docs/synthetic-cohort.md
explains what is drawn and how the physiology maps to pixels. Modules: physiology (sample the truth), plan (one
task per clip), anatomy (the heart per view as drawing primitives), render (frames), dicom_writer (files),
broken_files, reports_csv (linking defects), report_text and report_sections (report structure) and house_style
(the phrasings of each site's report template, house_styles/*.yaml). Nothing is imported here, so that
report_text stays importable without OpenCV and pydicom.
"""
