"""CLIP contrastive training: one random frame per clip per epoch, per-epoch checkpoints, resume.

`train_clip` runs in a single process or under `torchrun` (DDP). It keeps the checkpoint with the
lowest validation MCMRR as the model it passes on (`best.json`), and resumes a killed run from the
newest checkpoint that verifies, with the same step count and learning-rate schedule.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import open_clip
import torch
import torch.distributed as dist
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from open_clip.loss import ClipLoss
from torch.nn.parallel import DistributedDataParallel

from echo_pipeline import CODE_VERSION
from echo_pipeline.errors import CheckpointError, InputContractError
from echo_pipeline.lr_schedule import lr_at, warmup_length
from echo_pipeline.metrics import ranks
from echo_pipeline.pooling import pool_texts
from echo_pipeline.tokenizers.protocol import ReportTokenizer
from echo_pipeline.training import checkpoint as ckpt
from echo_pipeline.training import ddp
from echo_pipeline.training.data import (ClipFrameDataset, TextSampler, Tokenizer, TrainPair, as_pairs,
                                         available_cores, default_text_sampler, evaluation_texts, make_loader,
                                         normalize_images, pairs_fingerprint)
from echo_pipeline.training.model_factory import build_model
from echo_pipeline.training.presets import ResolvedConfig, TrainConfig, resolve_config
from echo_pipeline.training.pretrained import init_from_weights

log = logging.getLogger(__name__)

#: Bump when a change alters what training produces from the same inputs (2: BPE sentence snippets per clip;
#: 3: the model passed on is chosen by a 3-epoch mean of validation MCMRR).
#: It is the clip_model asset's code version and part of its run folder key, so older runs are not reused.
TRAINING_VERSION = "3"


@dataclass
class TrainResult:
    run_dir: Path
    best_checkpoint: Path
    best_epoch: int
    best_mcmrr: float
    last_checkpoint: Path
    epochs_completed: int
    step: int
    #: The per-epoch events of this invocation (also sent to `report`).
    history: list[dict] = field(default_factory=list)


def mcmrr(image_emb: torch.Tensor, text_emb: torch.Tensor) -> dict:
    """Mean cross-modal retrieval rank of paired embeddings (row i ↔ row i), with its two halves.

    The ranks are the evaluation's own (echo_pipeline.metrics.ranks): validation and the test tables
    count ties and chunk the products the same way. Rows are re-normalised in float32 first, since under
    bf16 autocast the model's own normalisation is only good to ~1e-2.
    """
    image = torch.nn.functional.normalize(image_emb.float(), dim=-1).cpu().numpy()
    text = torch.nn.functional.normalize(text_emb.float(), dim=-1).cpu().numpy()
    i2t, t2i = ranks.retrieval_ranks(image, text), ranks.retrieval_ranks(text, image)
    a, b = float(i2t.mean()), float(t2i.mean())
    return {"mcmrr": ranks.mcmrr(i2t, t2i), "i2t_mean_rank": a, "t2i_mean_rank": b, "val_size": int(i2t.size)}


def model_mean_std(model: torch.nn.Module) -> dict:
    """The normalisation the model's `preprocess_cfg` names (what embedding uses), CLIP's OpenAI values if none."""
    cfg = open_clip.get_model_preprocess_cfg(model)
    return {"mean": cfg.get("mean") or OPENAI_DATASET_MEAN, "std": cfg.get("std") or OPENAI_DATASET_STD}


@torch.no_grad()
def embed_images(model, loader, device: torch.device, autocast) -> torch.Tensor:
    """L2-normalised image embeddings of every item the loader yields, in order."""
    model.eval()
    out = []
    for images, _ in loader:
        with autocast():
            x = normalize_images(images, device, channels_last=device.type == "cuda", **model_mean_std(model))
            out.append(model.encode_image(x, normalize=True).float())
    return torch.cat(out)


@torch.no_grad()
def embed_reports(model, texts_per_report: Sequence[Sequence[str]], tokenizer: Tokenizer, *, context_length: int,
                  batch_size: int, device: torch.device, autocast) -> torch.Tensor:
    """One embedding per report, pooled from its texts' as stored reports are (`pooling.pool_texts`)."""
    model.eval()
    flat = [t for texts in texts_per_report for t in texts]
    chunks = []
    for s in range(0, len(flat), batch_size):
        tokens = tokenizer(flat[s:s + batch_size], context_length=context_length).to(device)
        with autocast():
            chunks.append(model.encode_text(tokens).float().cpu())
    return torch.from_numpy(pool_texts(torch.cat(chunks).numpy(), [len(texts) for texts in texts_per_report]))


def selection_score(val_mcmrr_history: Sequence[float], window: int) -> float:
    """What picks the model passed on: the mean of the last `window` validation MCMRRs (all of them while
    fewer epochs have run). Lower is better; ties keep the earlier epoch."""
    recent = list(val_mcmrr_history)[-window:]
    return float(sum(recent) / len(recent))


def _optimizer(model: torch.nn.Module, cfg: ResolvedConfig) -> torch.optim.AdamW:
    # As open_clip does: no weight decay on gains, biases, norms and the temperature.
    def exclude(n, p):
        return p.ndim < 2 or "bn" in n or "ln" in n or "bias" in n or "logit_scale" in n
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [{"params": [p for n, p in named if exclude(n, p)], "weight_decay": 0.0},
              {"params": [p for n, p in named if not exclude(n, p)], "weight_decay": cfg.weight_decay}]
    # The fused kernel (CPU and CUDA) is ~5x faster than the per-tensor loop on echo-tiny.
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, fused=True)


def _rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _run_key(cfg: ResolvedConfig, data: dict, world_size: int) -> str:
    blob = json.dumps({"config": cfg.to_dict(), "data": data, "world_size": world_size}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _broadcast(ctx: ddp.DistContext, obj):
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def train_clip(
    config: TrainConfig,
    train_pairs: Sequence[TrainPair],
    val_pairs: Sequence[TrainPair],
    tokenizer: Tokenizer,
    *,
    text_sampler: TextSampler | None = None,
    report: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Train (or resume) the run in `config.out_dir`; return where its best checkpoint is.

    `tokenizer` is a project `ReportTokenizer` (its `text_cfg` shapes the text tower, its text policy draws
    the texts) or any open_clip-style callable (preset text tower; `default_text_sampler` picks the texts).
    `report(event)` receives one dict per finished epoch on rank 0 (Dagster Pipes hooks in here).
    Raises InputContractError for unusable inputs and CheckpointError when `out_dir` holds a
    different run.
    """
    cfg = resolve_config(config, tokenizer.text_cfg if isinstance(tokenizer, ReportTokenizer) else None)
    train_pairs, val_pairs = as_pairs(train_pairs), as_pairs(val_pairs)
    if not val_pairs:
        raise InputContractError("training: the validation set is empty; best-epoch selection needs one")
    ctx = ddp.init_distributed(config.device)
    run_dir = Path(config.out_dir)
    prev_deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        _setup_runtime(config, ctx)
        return _train(config, cfg, ctx, run_dir, train_pairs, val_pairs, tokenizer,
                      text_sampler or default_text_sampler(tokenizer, cfg.tokenizer, cfg.context_length),
                      report)
    finally:
        torch.use_deterministic_algorithms(prev_deterministic)
        ddp.shutdown(ctx)


def _setup_runtime(config: TrainConfig, ctx: ddp.DistContext) -> None:
    # One intra-op pool per rank sized to its share of the cores: no oversubscription under torchrun.
    torch.set_num_threads(max(1, available_cores() // ctx.local_world_size))
    if config.deterministic:
        if ctx.device.type == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=ctx.device.type == "cuda")


class _Session:
    """The live state of one training invocation on one rank: model, optimizer, loaders, step, best."""

    def __init__(self, config, cfg, ctx, run_dir, train_pairs, val_pairs, tokenizer, sampler):
        self.config, self.cfg, self.ctx, self.run_dir = config, cfg, ctx, run_dir
        self.device, self.on_cuda = ctx.device, ctx.device.type == "cuda"
        self.data = {"train_fingerprint": pairs_fingerprint(train_pairs),
                     "val_fingerprint": pairs_fingerprint(val_pairs),
                     "train_pairs": len(train_pairs), "val_pairs": len(val_pairs)}
        self.run_key = _run_key(cfg, self.data, ctx.world_size)
        steps_per_epoch = len(train_pairs) // (cfg.batch_size * ctx.world_size)
        if steps_per_epoch == 0:
            raise InputContractError(
                f"training: {len(train_pairs)} training pairs do not fill one batch of {cfg.batch_size} "
                f"x {ctx.world_size} rank(s); lower batch_size")
        self.total_steps = steps_per_epoch * cfg.epochs
        self.warmup = warmup_length(self.total_steps, cfg.warmup_steps, cfg.warmup_fraction)
        self.start_epoch, self.step, self.best, self.last = 1, 0, None, None
        self.val_history: list[float] = []  # validation MCMRR per finished epoch, for `selection_score`

        torch.manual_seed(cfg.seed)
        self.model, self.model_cfg = build_model(cfg.model_name, text_cfg=cfg.text_cfg, image_size=cfg.image_size)
        # Start weights: tensors that fit are copied, the rest (e.g. another vocabulary's embedding) stay random
        # and are listed in the card; the directory's preprocess_cfg becomes the model's (training.pretrained).
        self.reinitialised = init_from_weights(self.model, cfg.init_from) if cfg.init_from else []
        self.normalisation = model_mean_std(self.model)
        self.model.to(self.device)
        if config.grad_checkpointing:
            self.model.set_grad_checkpointing(True)
        if self.on_cuda:
            self.model.to(memory_format=torch.channels_last)
        self.optimizer = _optimizer(self.model, cfg)
        # Gradients as views into DDP's buckets: no per-step gradient copy.
        self.net = (DistributedDataParallel(self.model, device_ids=[self.device.index] if self.on_cuda else None,
                                            gradient_as_bucket_view=True) if ctx.distributed else self.model)
        self.loss_fn = ClipLoss(local_loss=ctx.distributed, gather_with_grad=ctx.distributed, cache_labels=True,
                                rank=ctx.rank, world_size=ctx.world_size)
        self.autocast = ((lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if self.on_cuda
                         else contextlib.nullcontext)
        cores = max(1, available_cores() // ctx.local_world_size)
        workers = config.num_workers if config.num_workers is not None else min(12, cores - 1)
        self.tokenizer = tokenizer
        self.val_texts = [evaluation_texts(p.text, sampler) for p in val_pairs]
        common = dict(image_size=cfg.image_size, context_length=cfg.context_length, seed=cfg.seed)
        self.train_loader = make_loader(
            ClipFrameDataset(train_pairs, tokenizer, sampler, train=True, **common), batch_size=cfg.batch_size,
            num_workers=workers, rank=ctx.rank, world_size=ctx.world_size, shuffle=True, drop_last=True,
            seed=cfg.seed, pin_memory=self.on_cuda)
        self.val_loader = make_loader(
            ClipFrameDataset(val_pairs, tokenizer, sampler, train=False, **common), batch_size=cfg.batch_size,
            num_workers=workers, rank=0, world_size=1, shuffle=False, drop_last=False, seed=cfg.seed,
            pin_memory=self.on_cuda)

    def restore(self, ckpt_dir: Path) -> None:
        """Continue from a verified checkpoint of this same run (CheckpointError for another run's)."""
        state = ckpt.read_training_state(ckpt_dir)
        if state.card.get("run_key") != self.run_key:
            raise CheckpointError(
                f"{ckpt_dir}: written by a different run (preset, settings, data or world size differ); "
                "use a new out_dir or restore the original inputs")
        self.model.load_state_dict(ckpt.read_model_state(ckpt_dir))
        self.optimizer.load_state_dict(state.optimizer_state)
        torch.set_rng_state(state.rng_state["torch"])
        if self.on_cuda and "cuda" in state.rng_state:
            torch.cuda.set_rng_state(state.rng_state["cuda"], self.device)
        self.start_epoch, self.step, self.best = state.epoch + 1, state.step, state.card.get("best")
        self.val_history = list(state.card.get("val_mcmrr_history", []))
        self.last = ckpt_dir
        if self.ctx.is_main and self.best:  # a kill between checkpoint and pointer may have left it stale
            ckpt.write_best(self.run_dir, self.run_dir / "checkpoints" / self.best["checkpoint"], self.best["epoch"],
                            {"mcmrr": self.best["mcmrr"]})
        log.info("resuming %s at epoch %d, step %d", ckpt_dir, self.start_epoch, self.step)

    def train_epoch(self, epoch: int) -> dict:
        """One pass over this rank's shard; returns loss (averaged over ranks), lr, timing."""
        cfg, device = self.cfg, self.device
        self.train_loader.sampler.set_epoch(epoch)
        self.net.train()
        # The loss is summed on the device: a .item() per step would stall the GPU pipeline.
        t0, loss_sum, batches, lr = time.perf_counter(), torch.zeros((), device=device), 0, 0.0
        for images, tokens in self.train_loader:
            lr = lr_at(self.step, base_lr=cfg.lr, warmup_steps=self.warmup, total_steps=self.total_steps)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            images = normalize_images(images, device, channels_last=self.on_cuda, **self.normalisation)
            with self.autocast():
                image_f, text_f, scale = self.net(images, tokens.to(device, non_blocking=True))
                loss = self.loss_fn(image_f, text_f, scale)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip_norm:
                torch.nn.utils.clip_grad_norm_(self.net.parameters(), cfg.grad_clip_norm, foreach=True)
            self.optimizer.step()
            with torch.no_grad():  # open_clip's cap on the temperature: logit scale <= 100
                self.model.logit_scale.clamp_(0, math.log(100))
            self.step += 1
            loss_sum, batches = loss_sum + loss.detach().float(), batches + 1
            if self.ctx.is_main and self.config.log_every_steps and self.step % self.config.log_every_steps == 0:
                log.info("epoch %d step %d/%d loss %.4f lr %.3g", epoch, self.step, self.total_steps,
                         loss.item(), lr)
        mean_loss = loss_sum.item() / max(1, batches)  # waits for the device, so the timing is true
        seconds = time.perf_counter() - t0
        return {"train_loss": ddp.mean_across_ranks(self.ctx, mean_loss), "lr": lr,
                "train_seconds": seconds,
                "samples_per_s": batches * cfg.batch_size * self.ctx.world_size / seconds}

    def finish_epoch(self, epoch: int, train_metrics: dict) -> dict:
        """Rank 0: validate, checkpoint, move the best pointer, prune; return the epoch event."""
        image_emb = embed_images(self.model, self.val_loader, self.device, self.autocast)
        text_emb = embed_reports(self.model, self.val_texts, self.tokenizer, context_length=self.cfg.context_length,
                                 batch_size=self.cfg.batch_size, device=self.device, autocast=self.autocast)
        metrics = mcmrr(image_emb, text_emb)
        self.val_history.append(metrics["mcmrr"])
        metrics["selection_mcmrr"] = selection_score(self.val_history, self.config.selection_window)
        is_best = self.best is None or metrics["selection_mcmrr"] < self.best.get("selection_mcmrr",
                                                                                  self.best["mcmrr"])
        if is_best:
            self.best = {"epoch": epoch, "checkpoint": ckpt.checkpoint_name(epoch), "mcmrr": metrics["mcmrr"],
                         "selection_mcmrr": metrics["selection_mcmrr"]}
        epoch_metrics = dict(metrics, **train_metrics)
        card = {"preset": self.cfg.preset, "config": self.cfg.to_dict(), "run_key": self.run_key,
                "data": self.data, "code_version": CODE_VERSION, "training_version": TRAINING_VERSION,
                "torch_version": torch.__version__, "open_clip_version": open_clip.__version__,
                "world_size": self.ctx.world_size, "total_steps": self.total_steps, "warmup_steps": self.warmup,
                "metrics": epoch_metrics, "best": self.best, "val_mcmrr_history": list(self.val_history),
                "init_from": ({"path": self.cfg.init_from, "reinitialised": self.reinitialised}
                              if self.cfg.init_from else None),
                "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self.last = ckpt.save_checkpoint(
            self.run_dir, epoch, model_state=self.model.state_dict(), model_cfg=self.model_cfg,
            preprocess_cfg=dict(self.model.visual.preprocess_cfg), optimizer_state=self.optimizer.state_dict(),
            step=self.step, rng_state=_rng_state(self.device), card=card)
        if is_best:
            ckpt.write_best(self.run_dir, self.last, epoch, metrics)
        if self.config.keep_last:
            ckpt.prune_checkpoints(self.run_dir, max(2, self.config.keep_last), keep={self.best["checkpoint"]})
        return dict(epoch_metrics, event="epoch", epoch=epoch, epochs=self.cfg.epochs, step=self.step,
                    checkpoint=str(self.last), is_best=is_best, best_epoch=self.best["epoch"])


def _train(config, cfg, ctx, run_dir, train_pairs, val_pairs, tokenizer, sampler, report) -> TrainResult:
    session = _Session(config, cfg, ctx, run_dir, train_pairs, val_pairs, tokenizer, sampler)
    resume_from = _find_resume(config, ctx, run_dir)
    if resume_from is not None:
        session.restore(resume_from)
    history = []
    for epoch in range(session.start_epoch, cfg.epochs + 1):
        train_metrics = session.train_epoch(epoch)
        if ctx.is_main:
            event = session.finish_epoch(epoch, train_metrics)
            history.append(event)
            if report is not None:
                report(event)
        ddp.barrier(ctx)
        if config.stop_after_epoch is not None and epoch >= config.stop_after_epoch:
            break
    best, last = _broadcast(ctx, (session.best, str(session.last) if session.last else None))
    if best is None:
        raise CheckpointError(f"{run_dir}: no epoch finished and no checkpoint to resume; rerun training")
    return TrainResult(run_dir=run_dir, best_checkpoint=run_dir / "checkpoints" / best["checkpoint"],
                       best_epoch=best["epoch"], best_mcmrr=best["mcmrr"], last_checkpoint=Path(last),
                       epochs_completed=int(Path(last).name[6:]), step=session.step, history=history)


def _find_resume(config: TrainConfig, ctx: ddp.DistContext, run_dir: Path) -> Path | None:
    """Rank 0 picks (and quarantines around) the resume checkpoint; every rank gets the same answer."""
    found = None
    if ctx.is_main:
        if not config.resume and ckpt.checkpoint_dirs(run_dir):
            raise InputContractError(
                f"{run_dir}: holds checkpoints but resume=False; set resume=True or choose an empty out_dir")
        found = ckpt.select_resume_checkpoint(run_dir) if config.resume else None
    found = _broadcast(ctx, str(found) if found else None)
    return Path(found) if found else None
