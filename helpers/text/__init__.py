"""Text: tokenise → vocabulary → batches (``pipeline``, what torchtext did), Korean morphological analysers
(``korean``), subword tokenizer training (``subword``), LSTM classifiers (``lstm``), Hugging Face fine-tuning
(``hf_finetune``), the RNN/LSTM cells of lesson 01 (``rnn_cells``), notebook 06's recipe (``korean_emotion``,
``soft_labels``) and notebook 07's macaron encoder (``macaron``). Imports ``helpers.core`` only."""
