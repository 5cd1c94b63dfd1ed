"""Evaluation metrics: PSNR/SSIM (Y or RGB), LPIPS v0.1 AlexNet, NIQE.

Importing this package loads no asset and downloads nothing; LPIPS and NIQE read their files from the
cache filled by `rlse-fast fetch-assets` when first used, and raise UserError with the fix if absent.

Inputs: `psnr`, `ssim`, `niqe.niqe` take (H, W, 3) uint8 RGB arrays; `psnr_batch`, `ssim_batch`,
`niqe_batch` and `LPIPS()(x, y)` take (B, 3, H, W) float tensors in [-1, 1].
"""
from .lpips import LPIPS
from .niqe import niqe_batch  # not the function `niqe`: it would hide the submodule of that name
from .pixels import tensor_to_uint8, uint8_to_tensor
from .psnr_ssim import psnr, psnr_batch, ssim, ssim_batch

__all__ = ["LPIPS", "niqe_batch", "psnr", "psnr_batch", "ssim", "ssim_batch",
           "tensor_to_uint8", "uint8_to_tensor"]
