"""Looking inside a trained model (docs/evaluation.md, "Looking inside"); no Dagster.

- `umap_projection`: `embedding_umap`, the test clips' embeddings in 2-D with their labels.
- `saliency`: PromptCAM, which image regions raise a frame's cosine similarity to a prompt (Grad-CAM).
- `saliency_panels`: `prompt_saliency`, the highest- and lowest-scoring test clips of each device and chamber
  task, explained; `explain`: one clip or DICOM file and a prompt, for `echo-pipeline explain`.
- `study_reports`: a preliminary report per study (zero-shot and kNN labels, calibrated, with evidence).
- `plots`: the figures as PNG bytes.

This package sits on the evaluation floor: it reads stored embeddings and loads models like the evaluation run.
"""
