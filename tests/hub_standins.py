"""Tiny, randomly initialised stand-ins for the model hub checkpoints the notebooks use, written into a Hugging
Face cache under the real repository ids, with the real model classes, config types and tokenizer / feature
extractor types (only the sizes are small). Nothing is downloaded."""
from __future__ import annotations

import json
from pathlib import Path

SNAPSHOT = "0" * 39 + "1"  # the commit hash the cache's refs/main points at
SPECIALS_BERT = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
SPECIALS_KLUE = ["[CLS]", "[PAD]", "[SEP]", "[UNK]", "[MASK]"]  # klue/roberta-base's order: [PAD] is id 1


def snapshot_dir(cache: Path, repo_id: str) -> Path:
    """The folder ``from_pretrained(repo_id)`` reads in ``cache`` (HF_HUB_CACHE), created with its ``refs/main``."""
    repo = Path(cache) / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(SNAPSHOT)
    folder = repo / "snapshots" / SNAPSHOT
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _wordpiece_vocab(specials: list[str], texts: list[str], limit: int = 3000) -> list[str]:
    """Special tokens, then the commonest characters of ``texts`` (whole-word and ``##`` forms), then short words."""
    from collections import Counter

    chars = Counter(ch for text in texts for ch in text if not ch.isspace())
    words = Counter(w for text in texts for w in text.split() if 1 < len(w) <= 8)
    vocab = list(specials)
    for ch, _ in chars.most_common(limit // 3):
        vocab += [ch, "##" + ch]
    vocab += [w for w, _ in words.most_common(limit - len(vocab)) if w not in vocab]
    return list(dict.fromkeys(vocab))


def write_bert_base_uncased(cache: Path, texts: list[str]) -> Path:
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    folder = snapshot_dir(cache, "bert-base-uncased")
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(_wordpiece_vocab(SPECIALS_BERT, [t.lower() for t in texts])) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab=str(vocab), do_lower_case=True, model_max_length=512)
    tokenizer.save_pretrained(folder)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, pad_token_id=0,
                        architectures=["BertForMaskedLM"])
    BertForMaskedLM(config).save_pretrained(folder)
    return folder


def write_klue_roberta_base(cache: Path, texts: list[str]) -> Path:
    """klue/roberta-base: a RoBERTa model whose tokenizer is a BertTokenizer (WordPiece), as on the hub."""
    from transformers import BertTokenizerFast, RobertaConfig, RobertaForMaskedLM

    folder = snapshot_dir(cache, "klue/roberta-base")
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(_wordpiece_vocab(SPECIALS_KLUE, texts)) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab=str(vocab), do_lower_case=False, model_max_length=512,
                                  bos_token="[CLS]", eos_token="[SEP]")
    tokenizer.save_pretrained(folder)
    config_path = folder / "tokenizer_config.json"
    tok_config = json.loads(config_path.read_text())
    tok_config["tokenizer_class"] = "BertTokenizer"  # what klue/roberta-base's tokenizer_config.json says
    config_path.write_text(json.dumps(tok_config, indent=2))
    config = RobertaConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=514, type_vocab_size=1, pad_token_id=1,
                           bos_token_id=0, eos_token_id=2, architectures=["RobertaForMaskedLM"])
    RobertaForMaskedLM(config).save_pretrained(folder)
    return folder


def write_wav2vec2_base(cache: Path) -> Path:
    """facebook/wav2vec2-base: Wav2Vec2ForPreTraining with the real 7-layer conv strides (320 samples per frame), a
    Wav2Vec2FeatureExtractor that normalises and returns no attention mask (group norm), as on the hub."""
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForPreTraining

    folder = snapshot_dir(cache, "facebook/wav2vec2-base")
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                             return_attention_mask=False).save_pretrained(folder)
    config = Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                            conv_dim=(16,) * 7, conv_stride=(5, 2, 2, 2, 2, 2, 2), conv_kernel=(10, 3, 3, 3, 3, 2, 2),
                            feat_extract_norm="group", do_stable_layer_norm=False, num_conv_pos_embeddings=16,
                            num_conv_pos_embedding_groups=4, codevector_dim=32, proj_codevector_dim=32,
                            num_codevectors_per_group=16, vocab_size=32, architectures=["Wav2Vec2ForPreTraining"])
    Wav2Vec2ForPreTraining(config).save_pretrained(folder)
    return folder
