"""Tiny, randomly initialised stand-ins for the model hub checkpoints the notebooks use, written into a Hugging
Face cache under the real repository ids, with the real model classes, config types and tokenizer / feature
extractor types (only the sizes are small). Nothing is downloaded."""

from __future__ import annotations

import json
import string
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
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        pad_token_id=0,
        architectures=["BertForMaskedLM"],
    )
    BertForMaskedLM(config).save_pretrained(folder)
    return folder


def write_klue_roberta_base(cache: Path, texts: list[str]) -> Path:
    """klue/roberta-base: a RoBERTa model whose tokenizer is a BertTokenizer (WordPiece), as on the hub."""
    from transformers import BertTokenizerFast, RobertaConfig, RobertaForMaskedLM

    folder = snapshot_dir(cache, "klue/roberta-base")
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(_wordpiece_vocab(SPECIALS_KLUE, texts)) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(
        vocab=str(vocab), do_lower_case=False, model_max_length=512, bos_token="[CLS]", eos_token="[SEP]"
    )
    tokenizer.save_pretrained(folder)
    config_path = folder / "tokenizer_config.json"
    tok_config = json.loads(config_path.read_text())
    tok_config["tokenizer_class"] = "BertTokenizer"  # what klue/roberta-base's tokenizer_config.json says
    config_path.write_text(json.dumps(tok_config, indent=2))
    config = RobertaConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=514,
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        architectures=["RobertaForMaskedLM"],
    )
    RobertaForMaskedLM(config).save_pretrained(folder)
    return folder


def write_wav2vec2_base(cache: Path) -> Path:
    """facebook/wav2vec2-base: Wav2Vec2ForPreTraining with the real 7-layer conv strides (320 samples per frame), a
    Wav2Vec2FeatureExtractor that normalises and returns no attention mask (group norm), as on the hub."""
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForPreTraining

    folder = snapshot_dir(cache, "facebook/wav2vec2-base")
    Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=False
    ).save_pretrained(folder)
    config = Wav2Vec2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(16,) * 7,
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        feat_extract_norm="group",
        do_stable_layer_norm=False,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        codevector_dim=32,
        proj_codevector_dim=32,
        num_codevectors_per_group=16,
        vocab_size=32,
        architectures=["Wav2Vec2ForPreTraining"],
    )
    Wav2Vec2ForPreTraining(config).save_pretrained(folder)
    return folder


# --------------------------------------------------------------------------- the pretrained registry's hub ids

REGISTRY_TEXTS = [  # the vocabulary of the registry stand-ins (no data set needed): English and Korean
    "i feel happy today",
    "this is a sad and lonely evening",
    "what a wonderful surprise",
    "i am so angry about the delay",
    "the movie was boring",
    "we were afraid of the dark",
    "오늘 정말 행복해요",
    "너무 슬프고 외로운 밤이야",
    "깜짝 놀랐어요",
    "화가 나서 참을 수 없어",
]


def _unigram_vocab(specials: list[str], texts: list[str]) -> list[tuple[str, float]]:
    """A SentencePiece-style Unigram vocabulary: specials (score 0), ``▁``-prefixed words, then single characters."""
    from collections import Counter

    words = Counter("\u2581" + w for text in texts for w in text.split())
    chars = Counter(ch for text in texts for ch in text if not ch.isspace())
    chars.update(string.ascii_letters + string.digits + string.punctuation)  # "query: " and any English word
    vocab = [(tok, 0.0) for tok in specials] + [("\u2581", -2.0)]
    vocab += [(w, -3.0 - 0.01 * i) for i, (w, _) in enumerate(words.most_common())]
    vocab += [(ch, -8.0 - 0.01 * i) for i, (ch, _) in enumerate(chars.most_common())]
    return list({tok: (tok, score) for tok, score in vocab}.values())


def write_multilingual_e5_small(cache: Path, texts: list[str] = REGISTRY_TEXTS) -> Path:
    """intfloat/multilingual-e5-small: a BertModel whose tokenizer is XLM-RoBERTa's (SentencePiece Unigram,
    ``<s>``=0 ``<pad>``=1 ``</s>``=2 ``<unk>``=3, ``<mask>`` last), config ``model_type`` bert, as on the hub."""
    from transformers import BertConfig, BertModel, XLMRobertaTokenizerFast

    folder = snapshot_dir(cache, "intfloat/multilingual-e5-small")
    vocab = _unigram_vocab(["<s>", "<pad>", "</s>", "<unk>"], texts) + [("<mask>", 0.0)]
    tokenizer = XLMRobertaTokenizerFast(vocab=vocab, model_max_length=512)
    tokenizer.save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        type_vocab_size=2,
        pad_token_id=0,
        tokenizer_class="XLMRobertaTokenizer",
        architectures=["BertModel"],
    )
    BertModel(config).save_pretrained(folder)
    return folder


def write_whisper_base(cache: Path) -> Path:
    """openai/whisper-base: a WhisperModel (80 mel bins, 1500 encoder positions, the real vocabulary size and
    special ids) with a WhisperFeatureExtractor (30 s, hop 160), as on the hub; only the widths and depths are small."""
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    folder = snapshot_dir(cache, "openai/whisper-base")
    WhisperFeatureExtractor(
        feature_size=80,
        sampling_rate=16000,
        hop_length=160,
        chunk_length=30,
        n_fft=400,
        padding_value=0.0,
        return_attention_mask=False,
    ).save_pretrained(folder)
    config = WhisperConfig(
        vocab_size=51865,
        num_mel_bins=80,
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_source_positions=1500,
        max_target_positions=448,
        architectures=["WhisperForConditionalGeneration"],
    )
    WhisperModel(config).save_pretrained(folder)
    return folder


def write_all_mpnet_base_v2(cache: Path, texts: list[str] = REGISTRY_TEXTS) -> Path:
    """sentence-transformers/all-mpnet-base-v2: an MPNetModel with MPNet's lower-casing WordPiece tokenizer
    (``<s>``=0 ``<pad>``=1 ``</s>``=2 ``<unk>``=3, ``<mask>`` last), plus the sentence-transformers mean-pooling
    files."""
    from transformers import MPNetConfig, MPNetModel, MPNetTokenizerFast

    folder = snapshot_dir(cache, "sentence-transformers/all-mpnet-base-v2")
    vocab = _wordpiece_vocab(["<s>", "<pad>", "</s>", "<unk>", "[UNK]"], [t.lower() for t in texts]) + ["<mask>"]
    tokenizer = MPNetTokenizerFast(
        vocab={tok: i for i, tok in enumerate(vocab)}, do_lower_case=True, model_max_length=384
    )
    tokenizer.save_pretrained(folder)
    config = MPNetConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=514,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        architectures=["MPNetForMaskedLM"],
    )
    MPNetModel(config).save_pretrained(folder)
    (folder / "modules.json").write_text(
        json.dumps(
            [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
            ],
            indent=2,
        )
    )
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True, "pooling_mode_cls_token": False})
    )
    return folder


def write_registry_models(cache: Path) -> dict[str, Path]:
    """Stand-ins for every hub id of :mod:`helpers.pretrained.registry` the tests cover, by course name."""
    return {
        "e5-small": write_multilingual_e5_small(cache),
        "whisper-base": write_whisper_base(cache),
        "mpnet-base": write_all_mpnet_base_v2(cache),
    }
