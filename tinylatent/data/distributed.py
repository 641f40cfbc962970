"""`torch.utils.data.distributed` spelling: DistributedSampler lives in sampler.py."""
from .sampler import DistributedSampler

__all__ = ["DistributedSampler"]
