"""What requests send: prompts and datasets, tokenizers."""
