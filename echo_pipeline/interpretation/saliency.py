"""PromptCAM: which regions of a frame raise its embedding's cosine similarity to a prompt's.

The paper's PromptCAM, built on pytorch-grad-cam's `GradCAM` with a custom target (`CosineToPrompt`): the
gradient of cos(image embedding, prompt embedding) with respect to a stage of the image tower, averaged per
channel, weights that stage's activations; the positive part, upsampled to the input and scaled to [0, 1]
per frame, is the saliency map. Frames go through the embedding path's own resizing and normalisation
(`embeddings.compute`), prompts through the evaluation's (`embed_texts`, one text), so the similarity
explained is the one the zero-shot tables score.

Layer: the deepest stage of the ConvNeXt trunk whose map still has at least ``MIN_GRID`` × ``MIN_GRID``
positions. For the paper's 224-px ConvNeXt that is the last stage (7 × 7); for `echo-tiny` at 112 px the last
stage is 3 × 3 (nine blocks over the whole sector: nothing to point at), so its third stage (7 × 7) is used.
The layer is named on every output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from echo_pipeline.embeddings.compute import ClipEmbedder, embed_texts, resize_frames
from echo_pipeline.errors import EvaluationError

MIN_GRID = 7


class CosineToPrompt:
    """pytorch-grad-cam target: the cosine similarity of one image's embedding to a fixed prompt embedding."""

    def __init__(self, prompt_embedding: torch.Tensor):
        self.prompt = F.normalize(prompt_embedding.float().flatten(), dim=0)

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        return F.cosine_similarity(model_output.float().flatten(), self.prompt.to(model_output.device), dim=0)


class _ImageTower(torch.nn.Module):
    """The CLIP model's image embedding as a plain forward (what GradCAM calls)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(x)


def saliency_stage(model: torch.nn.Module, image_size: int) -> tuple[str, torch.nn.Module]:
    """(name, module) of the deepest trunk stage with at least MIN_GRID² positions at ``image_size``."""
    stages = getattr(getattr(getattr(model, "visual", None), "trunk", None), "stages", None)
    if stages is None:
        raise EvaluationError("PromptCAM needs a timm ConvNeXt image tower (model.visual.trunk.stages); "
                              "this model has none")
    sizes: list[int] = []
    hooks = [stage.register_forward_hook(lambda _m, _i, out: sizes.append(out.shape[-1])) for stage in stages]
    try:
        with torch.no_grad():
            device = next(model.parameters()).device
            model.encode_image(torch.zeros(1, 3, image_size, image_size, device=device))
    finally:
        for hook in hooks:
            hook.remove()
    index = max([i for i, s in enumerate(sizes) if s >= MIN_GRID], default=len(stages) - 1)
    return f"visual.trunk.stages.{index}", stages[index]


@dataclass
class Explanation:
    """One frame as the model saw it (uint8 (S, S, 3)), its saliency map (S, S) in [0, 1], the cosine
    similarity of its embedding to the prompt, and the layer the map was taken at."""

    frame: np.ndarray
    saliency: np.ndarray
    similarity: float
    layer: str


class PromptCam:
    """PromptCAM of one model: `prompt` embeds a text, `explain` maps frames against a prompt embedding."""

    def __init__(self, model: torch.nn.Module, tokenizer, *, device: str | torch.device = "cpu"):
        from pytorch_grad_cam import GradCAM

        self.embedder = ClipEmbedder(model, device=device, batch_frames=1, num_workers=0)
        self.model, self.tokenizer, self.device = self.embedder.model, tokenizer, self.embedder.device
        self.layer, stage = saliency_stage(self.model, self.embedder.image_size)
        self.cam = GradCAM(model=_ImageTower(self.model), target_layers=[stage])

    def prompt(self, text: str) -> torch.Tensor:
        """The prompt's unit embedding, made as the evaluation makes prompt embeddings."""
        if not text.strip():
            raise EvaluationError("the prompt is empty; pass the words to explain")
        return torch.from_numpy(embed_texts(self.model, self.tokenizer, [text], device=self.device)[0])

    def similarities(self, frames: np.ndarray, prompt: torch.Tensor) -> np.ndarray:
        """Cosine similarity of each uint8 (F, H, W, 3) frame's embedding to ``prompt``."""
        picked = resize_frames(np.ascontiguousarray(frames), self.embedder.image_size)
        return (self.embedder.encode(picked).cpu() @ prompt.float()).numpy()

    def explain(self, frames: np.ndarray, prompt: torch.Tensor) -> list[Explanation]:
        """One `Explanation` per uint8 (F, H, W, 3) frame."""
        picked = resize_frames(np.ascontiguousarray(frames), self.embedder.image_size)
        out = []
        for frame in picked:
            x = self.embedder.preprocess(torch.as_tensor(frame[None]).to(self.device))
            with torch.enable_grad():
                cam = self.cam(input_tensor=x, targets=[CosineToPrompt(prompt)])[0]
                similarity = float(CosineToPrompt(prompt)(self.cam.outputs[0].detach()))
            out.append(Explanation(frame, np.clip(np.nan_to_num(cam), 0.0, 1.0).astype(np.float32), similarity,
                                   self.layer))
        return out
