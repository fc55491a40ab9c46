"""LoRA trainers (SFT, DPO, GRPO on TRL + PEFT) that train on factory datasets."""
