"""Readers of GAN weight files (official pickles, TF pickles, PULSE and rosinality .pt); `rlse_fast.checkpoints` picks one."""
