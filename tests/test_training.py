"""CLIP training core on tiny synthetic data: colour-coded clips paired with colour words.

Real .npy clip files and real checkpoint files; small images (32 px) and a word-level toy tokenizer
(small vocabulary, so checkpoints stay a few tens of MB) keep the file well under a minute.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from open_clip.loss import ClipLoss

from echo_pipeline.errors import CheckpointError, InputContractError
from echo_pipeline.storage import file_sha256
from echo_pipeline.tokenizers import learn_vocabulary, make_tokenizer, save_vocabulary
from echo_pipeline.training import checkpoint as ckpt
from echo_pipeline.training.data import (ClipFrameDataset, TrainPair, default_text_sampler, evaluation_texts,
                                         normalize_images)
from echo_pipeline.training.model_factory import (build_model, load_trained_model, model_config,
                                                  register_model_configs, save_hub_layout)
from echo_pipeline.training.presets import TrainConfig, resolve_config
from echo_pipeline.lr_schedule import lr_at, warmup_length
from echo_pipeline.training.trainer import mcmrr, selection_score, train_clip

REPO = Path(__file__).resolve().parents[1]
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30)}
WORDS = ["the", "heart", "is", "findings", "are", "everywhere", "frame", "looks", *COLOURS]


class WordTokenizer:
    """Toy tokenizer with open_clip's call signature: 0 pad, 1 start, 2 unknown, end-of-text = highest id."""

    def __init__(self):
        self.ids = {w: i + 3 for i, w in enumerate(WORDS)}
        self.vocab_size = len(WORDS) + 4
        self.eot = self.vocab_size - 1

    def __call__(self, texts, context_length=77):
        out = torch.zeros(len(texts), context_length, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = [1] + [self.ids.get(w, 2) for w in re.findall(r"[a-z]+", text.lower())]
            ids = ids[: context_length - 1] + [self.eot]
            out[row, : len(ids)] = torch.tensor(ids)
        return out


def make_pairs(directory: Path, n: int, seed: int, size: int = 32, frames: int = 4) -> list[TrainPair]:
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    names, pairs = list(COLOURS), []
    for i in range(n):
        colour = names[i % len(names)]
        base = np.array(COLOURS[colour], dtype=np.float64)[None, None, None, :]
        clip = np.clip(base + rng.normal(0, 25, (frames, size, size, 3)), 0, 255).astype(np.uint8)
        path = directory / f"clip{i:03d}.npy"
        np.save(path, clip)
        text = f"The heart is {colour}. Findings are {colour} everywhere. The frame looks {colour}."
        pairs.append(TrainPair(f"{directory.name}-{i}", str(path), text, f"patient{i // 2}"))
    return pairs


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    return make_pairs(root / "train", 16, seed=0), make_pairs(root / "val", 8, seed=1)


def tiny_config(out_dir: Path, **overrides) -> TrainConfig:
    settings = dict(out_dir=str(out_dir), epochs=3, batch_size=8, image_size=32, lr=2e-4, num_workers=0,
                    vocab_size=WordTokenizer().vocab_size, log_every_steps=0)
    settings.update(overrides)
    return TrainConfig(**settings)


@pytest.fixture(scope="module")
def full_run(data, tmp_path_factory):
    """An uninterrupted 3-epoch run (2 steps per epoch) that several tests inspect."""
    events = []
    result = train_clip(tiny_config(tmp_path_factory.mktemp("full") / "run"), *data, WordTokenizer(),
                        report=events.append)
    return result, events


def weights_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_presets_register_with_open_clip_and_match_published_echoclip_shape(tmp_path):
    import open_clip
    names = register_model_configs()
    assert {"echo-tiny", "echoclip", "echoclip-r"} <= set(names) <= set(open_clip.list_models())
    # EchoCLIP is open_clip's ConvNeXt-Base CLIP: the published weights load into this exact config.
    assert model_config("echoclip") == open_clip.get_model_config("convnext_base")
    r = model_config("echoclip-r", vocab_size=843)
    assert r["text_cfg"]["vocab_size"] == 843 and r["vision_cfg"] == model_config("echoclip")["vision_cfg"]
    tiny, cfg = build_model("echo-tiny", vocab_size=100)
    assert tiny.token_embedding.weight.shape == (100, 128) and cfg["vision_cfg"]["image_size"] == 112
    with pytest.raises(InputContractError, match="vocab_size"):
        resolve_config(TrainConfig(preset="echoclip-r"))
    # The template tokenizer's text_cfg (its vocabulary, EOT-position pooling) shapes the text tower.
    texts = [f"The LV is normal. The ejection fraction is {40 + i}%." for i in range(6)]
    template = make_tokenizer("template", save_vocabulary(learn_vocabulary(texts, min_count=2), tmp_path / "v.json"))
    resolved = resolve_config(TrainConfig(preset="echoclip-r"), template.text_cfg)
    assert resolved.text_cfg["vocab_size"] == template.vocab_size and resolved.text_cfg["pool_type"] == "eos"
    model, _ = build_model("echo-tiny", text_cfg=template.text_cfg, image_size=32)
    assert model.token_embedding.weight.shape[0] == template.vocab_size and model.text_pool_type == "eos"
    with pytest.raises(InputContractError, match="lr"):
        resolve_config(TrainConfig(lr=2e-3))


def test_schedule_warms_up_linearly_then_decays_to_zero():
    total, warm = 100, 10
    lrs = [lr_at(s, base_lr=5e-5, warmup_steps=warm, total_steps=total) for s in range(total + 1)]
    assert lrs[0] == pytest.approx(5e-6) and lrs[warm - 1] == pytest.approx(5e-5)
    assert all(b > a for a, b in zip(lrs[:warm], lrs[1:warm]))
    assert all(b <= a for a, b in zip(lrs[warm:], lrs[warm + 1:]))
    assert lrs[total] == pytest.approx(0.0, abs=1e-15) and min(lrs) >= 0
    assert warmup_length(1_000_000, 2000, 0.0) == 2000 and warmup_length(40, 2000, 0.0) == 20
    assert warmup_length(400, None, 0.05) == 20


def test_default_text_policy_trains_on_sentence_snippets_and_validates_on_the_whole_report():
    from open_clip.tokenizer import SimpleTokenizer
    sentences = [f"Finding number {i} concerns the {w} and is described here in some detail." for i, w in
                 enumerate(["left ventricle", "right ventricle", "mitral valve", "aortic valve", "pericardium",
                            "left atrium", "right atrium", "tricuspid valve", "pulmonary artery", "aorta"])]
    report = " ".join(sentences)
    count = SimpleTokenizer().encode
    assert len(count(report)) > 75
    for tokenizer in (make_tokenizer("bpe"), SimpleTokenizer()):  # the project's, and a bare open_clip one
        sampler = default_text_sampler(tokenizer, "bpe", 77)
        snippets = [sampler(report, epoch, np.random.default_rng(epoch)) for epoch in range(6)]
        assert all(len(count(s)) <= 75 and s.split(". ")[0] + "." in sentences for s in snippets)
        assert len(set(snippets)) > 1 and snippets[2] == sampler(report, 2, np.random.default_rng(2))
        texts = evaluation_texts(report, sampler)
        assert len(texts) > 1 and " ".join(texts) == report  # validation sees every sentence once
    assert evaluation_texts(("a.", "b."), sampler) == ["a.", "b."]


def test_dataset_draws_seeded_frames_resizes_and_rejects_bad_clips(data, tmp_path):
    train, _ = data
    ds = ClipFrameDataset(train, WordTokenizer(), lambda r, e, rng: r, image_size=24, context_length=77,
                          seed=3, train=True)
    image, tokens = ds[(5, 2)]
    assert image.dtype == torch.uint8 and image.shape == (3, 24, 24) and tokens.shape == (77,)
    assert torch.equal(image, ds[(5, 2)][0])
    draws = {bytes(ds[(5, e)][0].numpy()) for e in range(12)}
    assert len(draws) > 1  # a different frame across epochs
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((4, 8, 8), np.uint8))
    ds = ClipFrameDataset([TrainPair("bad", str(bad), "x", "p")], WordTokenizer(), lambda r, e, rng: r,
                          image_size=24, context_length=77, seed=3, train=True)
    with pytest.raises(InputContractError, match="bad.npy"):
        ds[(0, 0)]


def test_validation_mcmrr_counts_strictly_higher_candidates():
    e = torch.nn.functional.normalize(torch.randn(6, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    assert mcmrr(e, e)["mcmrr"] == 1.0
    shifted = torch.roll(e, 1, dims=0)
    sim = e @ shifted.T
    i2t = 1 + (sim > sim.diag()[:, None]).sum(1).double()
    t2i = 1 + (sim > sim.diag()[None, :]).sum(0).double()
    got = mcmrr(e, shifted)
    assert got["i2t_mean_rank"] == pytest.approx(i2t.mean().item())
    assert got["t2i_mean_rank"] == pytest.approx(t2i.mean().item())
    assert got["mcmrr"] == pytest.approx((i2t.mean().item() + t2i.mean().item()) / 2) and got["val_size"] == 6
    same = torch.ones(5, 4) / 2  # all candidates tie: everyone ranks first
    assert mcmrr(same, same)["mcmrr"] == 1.0


def test_hub_layout_loads_offline_and_never_unpickles(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("model loading tried to open a network connection")
    monkeypatch.setattr(socket.socket, "connect", no_network)
    model, cfg = build_model("echo-tiny", vocab_size=64, image_size=32)
    hub = save_hub_layout(model, cfg, tmp_path / "hub")
    assert weights_equal(load_trained_model(hub).state_dict(), model.state_dict())
    again, _ = build_model("echo-tiny", vocab_size=64, image_size=32, init_from=hub)
    assert weights_equal(again.state_dict(), model.state_dict())
    # The published EchoCLIP repo ships open_clip_pytorch_model.bin: read with weights_only=True.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "open_clip_config.json").write_text((hub / "open_clip_config.json").read_text())
    torch.save(model.state_dict(), bin_dir / "open_clip_pytorch_model.bin")
    assert weights_equal(load_trained_model(bin_dir).state_dict(), model.state_dict())
    torch.save({"state_dict": model.state_dict(), "payload": WordTokenizer()}, bin_dir / "open_clip_pytorch_model.bin")
    with pytest.raises(CheckpointError):  # arbitrary objects are refused, not unpickled
        load_trained_model(bin_dir)


def test_selection_score_averages_the_last_epochs_so_a_single_noise_dip_does_not_win():
    # Shaped like the demo's template run: a dip at epoch 5, then a plateau below the dip's neighbours.
    history = [36.8, 33.9, 34.9, 35.1, 27.6, 31.7, 31.4, 31.1, 29.6, 31.9, 30.1, 29.3, 28.7, 30.4]
    scores = [selection_score(history[:i + 1], 3) for i in range(len(history))]
    assert scores[0] == 36.8 and scores[1] == pytest.approx((36.8 + 33.9) / 2)
    assert scores[4] == pytest.approx((34.9 + 35.1 + 27.6) / 3)
    assert int(np.argmin(scores)) + 1 == 13  # epoch 13, not the dip at epoch 5
    assert int(np.argmin([selection_score(history[:i + 1], 1) for i in range(len(history))])) + 1 == 5


def test_training_lowers_loss_and_keeps_the_best_verified_epoch(data, full_run):
    train, _ = data
    result, events = full_run
    assert [e["epoch"] for e in events] == [1, 2, 3] and result.step == 3 * len(train) // 8
    losses = [e["train_loss"] for e in events]
    assert losses[2] < losses[1] < losses[0]
    # The same contrastive loss on fixed frames: seeded initial weights versus the trained ones.
    ds = ClipFrameDataset(train, WordTokenizer(), lambda r, e, rng: r, image_size=32, context_length=77,
                          seed=0, train=False)
    images, tokens = (torch.stack(t) for t in zip(*(ds[(i, 0)] for i in range(len(ds)))))
    images = normalize_images(images, torch.device("cpu"))
    torch.manual_seed(0)
    initial, _ = build_model("echo-tiny", vocab_size=WordTokenizer().vocab_size, image_size=32)
    trained = load_trained_model(result.last_checkpoint)
    with torch.no_grad():
        before, after = (ClipLoss()(*m.eval()(images, tokens)).item() for m in (initial, trained))
    assert after < before - 0.5
    cards = {d.name: ckpt.verify_checkpoint(d) for d in ckpt.checkpoint_dirs(result.run_dir)}
    assert sorted(cards) == ["epoch-0001", "epoch-0002", "epoch-0003"]
    history = [cards[n]["metrics"]["mcmrr"] for n in sorted(cards)]
    assert cards["epoch-0003"]["val_mcmrr_history"] == history
    for i, name in enumerate(sorted(cards)):  # the mean of up to 3 epochs ending at each
        assert cards[name]["metrics"]["selection_mcmrr"] == pytest.approx(np.mean(history[max(0, i - 2):i + 1]))
    best_name = min(cards, key=lambda n: (cards[n]["metrics"]["selection_mcmrr"], n))
    assert ckpt.read_best(result.run_dir).name == best_name == result.best_checkpoint.name
    card = cards["epoch-0003"]
    assert card["files"][ckpt.WEIGHTS_FILE] == file_sha256(result.last_checkpoint / ckpt.WEIGHTS_FILE)
    assert card["preset"] == "echo-tiny" and card["data"]["train_pairs"] == len(train) and card["code_version"]
    assert [e["lr"] for e in events] == [cards[n]["metrics"]["lr"] for n in sorted(cards)]
    loaded = load_trained_model(result.best_checkpoint)
    assert weights_equal(loaded.state_dict(), ckpt.read_model_state(result.best_checkpoint))


def test_resume_and_corrupt_fallback_reproduce_the_uninterrupted_run(data, full_run, tmp_path):
    train, val = data
    tok = WordTokenizer()
    full = full_run[0]
    run = tmp_path / "killed"
    train_clip(tiny_config(run, stop_after_epoch=1), train, val, tok)           # killed after epoch 1
    second = train_clip(tiny_config(run, stop_after_epoch=2, num_workers=1), train, val, tok)  # resumed
    assert second.epochs_completed == 2 and second.step == 2 * full.step // 3
    with open(second.last_checkpoint / ckpt.WEIGHTS_FILE, "r+b") as f:          # latest checkpoint damaged
        f.truncate(1000)
    (run / "checkpoints" / ".tmp-epoch-0003-999").mkdir()                        # and a half-written one
    with pytest.raises(CheckpointError, match="sha256"):
        ckpt.verify_checkpoint(second.last_checkpoint)
    final = train_clip(tiny_config(run), train, val, tok)
    assert (run / "checkpoints" / "epoch-0002.corrupt").is_dir()
    assert not (run / "checkpoints" / ".tmp-epoch-0003-999").exists()
    assert final.step == full.step and final.epochs_completed == 3
    full_card, final_card = (ckpt.verify_checkpoint(r.last_checkpoint) for r in (full, final))
    assert final_card["metrics"]["lr"] == full_card["metrics"]["lr"]
    assert weights_equal(ckpt.read_model_state(final.last_checkpoint), ckpt.read_model_state(full.last_checkpoint))
    with pytest.raises(CheckpointError, match="different run"):
        train_clip(tiny_config(run, lr=5e-4, epochs=4), train, val, tok)


def test_tampered_checkpoint_is_refused_everywhere(full_run, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(full_run[0].run_dir, run)
    last = run / "checkpoints" / full_run[0].last_checkpoint.name
    weights = last / ckpt.WEIGHTS_FILE
    blob = bytearray(weights.read_bytes())
    blob[-1] ^= 0xFF
    weights.write_bytes(bytes(blob))
    (run / ckpt.BEST_FILE).write_text(json.dumps({"epoch": 3, "checkpoint": f"checkpoints/{last.name}"}))
    for load in (ckpt.verify_checkpoint, ckpt.read_model_state, load_trained_model,
                 lambda d: build_model("echo-tiny", vocab_size=WordTokenizer().vocab_size, image_size=32,
                                       init_from=d)):
        with pytest.raises(CheckpointError, match="sha256"):
            load(last)
    with pytest.raises(CheckpointError, match="sha256"):
        ckpt.read_best(run)


def test_torchrun_two_cpu_ranks_on_gloo(tmp_path):
    rows = []
    for i in range(20):
        colour = ["red", "blue"][i % 2]
        np.save(tmp_path / f"c{i}.npy", np.full((4, 32, 32, 3), 200 if colour == "red" else 40, np.uint8))
        rows.append({"clip_id": f"c{i}", "npy_path": f"c{i}.npy", "text": f"The heart is {colour}. It is fine.",
                     "group_id": f"p{i}", "split": "val" if i >= 16 else "train"})
    (tmp_path / "pairs.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (tmp_path / "run.json").write_text(json.dumps({
        "train": {"out_dir": "run", "epochs": 1, "batch_size": 4, "image_size": 32, "num_workers": 0},
        "pairs": "pairs.jsonl", "tokenizer": "bpe"}))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "echo_pipeline.training.train_cli", "--config", str(tmp_path / "run.json")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stderr[-3000:]  # torchrun exits 0 only when every rank did
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [e["event"] for e in events] == ["epoch", "done"]  # rank 0 alone reports
    card = ckpt.verify_checkpoint(tmp_path / "run" / "checkpoints" / "epoch-0001")
    assert card["world_size"] == 2 and card["step"] == 16 // (4 * 2)


def test_pruning_keeps_the_newest_and_the_best(tmp_path):
    for epoch in range(1, 6):
        (tmp_path / "checkpoints" / ckpt.checkpoint_name(epoch)).mkdir(parents=True)
    removed = ckpt.prune_checkpoints(tmp_path, 2, keep={"epoch-0002"})
    assert sorted(d.name for d in removed) == ["epoch-0001", "epoch-0003"]
    assert [d.name for d in ckpt.checkpoint_dirs(tmp_path)] == ["epoch-0002", "epoch-0004", "epoch-0005"]
