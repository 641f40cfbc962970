"""The one way a model takes its configuration: a frozen dataclass plus keyword overrides.

    @dataclass(frozen=True)
    class VAEConfig:
        in_features: int = 784
        ...

    class VAE(nn.Module):
        def __init__(self, config: VAEConfig | None = None, **overrides):
            super().__init__()
            self.config = resolve_config(self, VAEConfig, config, overrides)

`VAE()`, `VAE(VAEConfig(latent_features=2))` and `VAE(latent_features=2)` build the same kind of
model; an unknown key raises before any layer is built, naming the model and the key.
"""
from __future__ import annotations

import dataclasses

__all__ = ["resolve_config"]


def resolve_config(model, config_cls: type, config, overrides: dict):
    """`config` (an instance of `config_cls`, or None for the defaults) with `overrides`
    applied via `dataclasses.replace`. `model` (an instance or a name) names the error."""
    name = model if isinstance(model, str) else type(model).__name__
    if config is None:
        config = config_cls()
    elif not isinstance(config, config_cls):
        raise TypeError(f"{name}: config must be a {config_cls.__name__}, got "
                        f"{type(config).__name__}")
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"{name}: unknown config key(s) {unknown}; {config_cls.__name__} has "
                        f"{sorted(known)}")
    return dataclasses.replace(config, **overrides) if overrides else config
