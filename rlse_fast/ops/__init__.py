"""StyleGAN2 ops: each with a plain-PyTorch reference and native kernels behind `impl=`."""
from .bias_act import bias_act
from .conv2d_resample import conv2d_resample
from .downsample_loss import downsample_loss
from .modulate import modulate
from .perface_conv import perface_conv2d
from .upfirdn2d import downsample2d, filter2d, setup_filter, upfirdn2d, upsample2d

__all__ = ["bias_act", "conv2d_resample", "downsample_loss", "downsample2d", "filter2d", "modulate", "perface_conv2d", "setup_filter", "upfirdn2d", "upsample2d"]
