"""The published template-vocabulary tokenizer against ids computed by hand from docs/tokenizers.md."""

import pytest
import torch

from echo_pipeline.tokenizers import ReportTokenizer, make_tokenizer
from echo_pipeline.tokenizers.published_template import PublishedVocabularyError

TEMPLATES = """THE LEFT VENTRICLE IS NORMAL IN SIZE.
LEFT VENTRICULAR EJECTION FRACTION IS <#>%.

<#> MITRAL REGURGITATION.
PA SYSTOLIC PRESSURE IS <#> TO <#> MMHG.
"""
# 4 templates -> ids 109..112; SOT 113, EOT 114.


@pytest.fixture
def tokenizer(tmp_path):
    path = tmp_path / "templates.txt"
    path.write_text(TEMPLATES)
    return make_tokenizer("published_template", path)


def test_layout_follows_the_templates(tokenizer):
    assert isinstance(tokenizer, ReportTokenizer)
    assert (tokenizer.sot_token_id, tokenizer.eot_token_id, tokenizer.vocab_size) == (113, 114, 115)
    assert tokenizer.text_cfg["vocab_size"] == 115


def test_hand_computed_report(tokenizer):
    report = ("The left ventricle is normal in size. Left ventricular ejection fraction is 55%.\n"
              "Moderate/severe mitral regurgitation. PA systolic pressure is 3.05 to 120 mmHg.\n"
              "The patient was seen by Dr. Who.")
    encoded = tokenizer.encode_report(report)
    assert encoded.ids == [109, 110, 55, 111, 105, 112, 3, 107, 108, 5, 106, 1, 20]
    assert (encoded.n_sentences, encoded.n_unknown_sentences) == (5, 1)
    row = tokenizer(report)[0]
    assert row.shape == (77,) and row.dtype == torch.long
    assert row[:15].tolist() == [113, *encoded.ids, 114]
    assert row[15:].eq(0).all()


def test_severity_spellings_and_leading_zeros(tokenizer):
    assert tokenizer.encode_report("Mild to moderate mitral regurgitation.").ids == [111, 104]
    assert tokenizer.encode_report("MILD MITRAL REGURGITATION").ids == [111, 101]
    assert tokenizer.encode_report("PA systolic pressure is 0.5 to 1000 mmHg.").ids == [
        112, 0, 107, 5, 106, 10, 108, 0]
    assert tokenizer.encode_report("Left ventricular ejection fraction is 07%.").ids == [110, 108, 7]


def test_unknown_only_report_and_truncation(tokenizer):
    assert tokenizer("Nothing here matches.")[0][:3].tolist() == [113, 114, 0]
    long = " ".join(["PA systolic pressure is 3.05 to 120 mmHg."] * 10)  # 8 ids per sentence
    row = tokenizer(long, context_length=20)[0].tolist()
    assert row == [113] + [112, 3, 107, 108, 5, 106, 1, 20] * 2 + [114, 0, 0]


def test_unreadable_vocabulary_is_refused(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(PublishedVocabularyError, match="empty.txt"):
        make_tokenizer("published_template", empty)
