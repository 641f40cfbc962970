"""The model contract (tinylatent/models/__init__.py, "Writing a model"), checked for every
trainable model class in `tinylatent.models.__all__`: built small, `loss` on a tiny batch
returns a scalar and a dict of detached scalar Tensors holding "loss"; each declared
capability (log_prob, sample, encode, reconstruct) returns the documented shape; configs are
frozen dataclasses taken as `__init__(config=None, **overrides)`, and an unknown override
raises naming the model and the key.

A new model adds one entry to TINY: name -> (build(**overrides), make_batch(rng)). A model
class in `__all__` without an entry fails `test_every_model_class_has_a_tiny_entry`. A batch
may be a tuple (inputs first, e.g. CLIP's (images, caption tokens)): `loss` takes the whole
batch, the capabilities its first element."""
from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest

import tinylatent as tl
import tinylatent.models as M
from tinylatent import nn


def _binary(d):
    return lambda rng: tl.tensor((rng.random((5, d)) < 0.5).astype(np.float32))


def _unit(*shape):
    return lambda rng: tl.tensor(rng.random((5, *shape)).astype(np.float32))


def _counts(rng):
    return tl.tensor(rng.poisson(1.0, (5, 12)).astype(np.float32))


def _tokens(vocab, length):
    return lambda rng: tl.tensor(rng.integers(0, vocab, (5, length)))


def _dequantised(rng):
    return tl.tensor(((rng.integers(0, 256, (5, 1, 4, 4)) + rng.random((5, 1, 4, 4))) / 256.0)
                     .astype(np.float32))


def _sentence_pair(rng):
    """(x_a, x_b): (5, 6) id batches of two languages, words then <eos> (id 2)."""
    a, b = rng.integers(4, 12, (5, 6)), rng.integers(12, 20, (5, 6))
    a[:, -1] = b[:, -1] = 2
    return tl.tensor(a), tl.tensor(b)


# name -> (build(**overrides) -> model, batch(rng) -> Tensor, config class or None)
TINY = {
    "Autoencoder": (lambda **o: M.Autoencoder(in_features=12, hidden_features=(8,),
                                              latent_features=3, **o), _unit(12), M.AEConfig),
    "DenoisingAE": (lambda **o: M.DenoisingAE(in_features=12, hidden_features=(8,),
                                              latent_features=3, **o), _unit(12), M.AEConfig),
    "SparseAE": (lambda **o: M.SparseAE(in_features=12, hidden_features=(8,),
                                        latent_features=3, **o), _unit(12), M.AEConfig),
    "ContractiveAE": (lambda **o: M.ContractiveAE(in_features=12, latent_features=3, **o),
                      _unit(12), M.AEConfig),
    "ConvAutoencoder": (lambda **o: M.ConvAutoencoder(hidden_channels=(2, 3), image_size=8,
                                                      latent_features=3, **o),
                        _unit(1, 8, 8), M.ConvAEConfig),
    "StackedAutoencoder": (lambda **o: M.StackedAutoencoder(in_features=12,
                                                            hidden_features=(8,),
                                                            latent_features=3, **o),
                           _unit(12), M.AEConfig),
    "LinearAutoencoder": (lambda **o: M.LinearAutoencoder(in_features=12, latent_features=3,
                                                          **o), _unit(12), M.AEConfig),
    "BagOfWordsAE": (lambda **o: M.BagOfWordsAE(in_features=12, hidden_features=8,
                                                latent_features=3, **o), _counts, M.BoWAEConfig),
    "VAE": (lambda **o: M.VAE(in_features=12, hidden_features=8, latent_features=3, **o),
            _unit(12), M.VAEConfig),
    "PlanarVAE": (lambda **o: M.PlanarVAE(in_features=12, hidden_features=8, latent_features=3,
                                          num_flows=2, **o), _binary(12), M.PlanarVAEConfig),
    "MADE": (lambda **o: M.MADE(in_features=12, hidden_features=(16,), num_masks=2, **o),
             _binary(12), M.MADEConfig),
    "NADE": (lambda **o: M.NADE(in_features=12, hidden_features=6, **o), _binary(12),
             M.NADEConfig),
    "PixelCNN": (lambda **o: M.PixelCNN(image_size=4, hidden_channels=4, num_layers=1, **o),
                 lambda rng: tl.tensor((rng.random((5, 1, 4, 4)) < 0.5).astype(np.float32)),
                 M.PixelCNNConfig),
    "GatedPixelCNN": (lambda **o: M.GatedPixelCNN(image_size=4, hidden_channels=4,
                                                  num_layers=2, **o),
                      lambda rng: tl.tensor((rng.random((5, 1, 4, 4)) < 0.5)
                                            .astype(np.float32)), M.GatedPixelCNNConfig),
    "WaveNet": (lambda **o: M.WaveNet(quantization_channels=8, hidden_channels=4,
                                      skip_channels=4, num_layers=2, **o),
                lambda rng: tl.tensor(rng.integers(0, 8, (5, 4))), M.WaveNetConfig),  # R = 4
    "LSTMLanguageModel": (lambda **o: M.LSTMLanguageModel(in_features=7, embedding_features=6,
                                                          hidden_features=5, **o),
                          _tokens(7, 35), M.LSTMLMConfig),
    "TransformerLM": (lambda **o: M.TransformerLM(in_features=7, block_size=8,
                                                  hidden_features=8, num_layers=2,
                                                  num_heads=2, **o),
                      _tokens(7, 8), M.TransformerLMConfig),
    "GAN": (lambda **o: M.GAN(hidden_features=(6,), **o),
            lambda rng: tl.tensor(rng.normal(size=(5, 2)).astype(np.float32)), M.GANConfig),
    "DCGAN": (lambda **o: M.DCGAN(image_size=8, hidden_channels=2, latent_features=3, **o),
              _unit(1, 8, 8), M.DCGANConfig),
    "WGANGP": (lambda **o: M.WGANGP(image_size=8, hidden_channels=2, latent_features=3, **o),
               _unit(1, 8, 8), M.WGANGPConfig),
    # an unpaired batch (domain A images, domain B images)
    "CycleGAN": (lambda **o: M.CycleGAN(image_size=8, hidden_channels=2, n_blocks=1, **o),
                 lambda rng: (_unit(1, 8, 8)(rng), _unit(1, 8, 8)(rng)), M.CycleGANConfig),
    # family 8: self-supervised pretext tasks and the masked autoencoder (issue 19)
    "RotationNet": (lambda **o: M.RotationNet(hidden_channels=(2, 3), image_size=8, **o),
                    _unit(1, 8, 8), M.RotationNetConfig),
    "MAE": (lambda **o: M.MAE(image_size=8, patch_size=4, hidden_features=8, num_layers=1,
                              num_heads=2, decoder_features=4, decoder_layers=1,
                              decoder_heads=1, **o), _unit(1, 8, 8), M.MAEConfig),
    "FramePredictor": (lambda **o: M.FramePredictor(image_size=8, hidden_channels=3,
                                                    kernel_size=3, **o),
                       _unit(3, 1, 8, 8), M.FramePredictorConfig),
    "ArrowOfTime": (lambda **o: M.ArrowOfTime(num_frames=3, image_size=8,
                                              hidden_channels=(2, 3), **o),
                    _unit(3, 1, 8, 8), M.ArrowOfTimeConfig),
    "Jigsaw": (lambda **o: M.Jigsaw(image_size=8, grid=2, cell=5, tile=3, hidden_channels=(2,),
                                    hidden_features=3, num_permutations=4, **o),
               _unit(1, 8, 8), M.JigsawConfig),
    "RelativePatch": (lambda **o: M.RelativePatch(image_size=8, cell=4, tile=3,
                                                  hidden_channels=(2,), hidden_features=3,
                                                  **o), _unit(1, 8, 8), M.RelativePatchConfig),
    "OrderVerification": (lambda **o: M.OrderVerification(image_size=8, hidden_channels=(2, 3),
                                                          hidden_features=3, **o),
                          _unit(5, 1, 8, 8), M.OrderVerificationConfig),
    "Exemplar": (lambda **o: M.Exemplar(image_size=8, hidden_channels=(2, 3), num_exemplars=5,
                                        **o),
                 _unit(1, 8, 8), M.ExemplarConfig),    # the 5 seeds, ids 0..4
    "Colorization": (lambda **o: M.Colorization(image_size=8, hidden_channels=(2,),
                                                grid_step=40.0, **o),
                     _unit(3, 8, 8), M.ColorizationConfig),     # sRGB images
    "TrackingByColorization": (lambda **o: M.TrackingByColorization(
        image_size=8, hidden_channels=(2,), latent_features=3, num_colors=4, **o),
        _unit(3, 3, 8, 8), M.TrackingConfig),                        # sRGB videos
    # a Flow is composed from a base and a transform (nflows style); its builders take the
    # config: ImageFlowConfig for the image flows (MAF here: no convolutions to compile)
    # contrastive learning (issue 18)
    "SiameseNet": (lambda **o: M.SiameseNet(image_size=8, hidden_channels=(2,),
                                            hidden_features=6, latent_features=3, **o),
                   _unit(1, 8, 8), M.SiameseConfig),
    "TripletNet": (lambda **o: M.TripletNet(image_size=8, hidden_channels=(2,),
                                            hidden_features=6, latent_features=3, **o),
                   _unit(1, 8, 8), M.TripletConfig),
    # a paired batch (images, caption tokens): capabilities take its first element
    "CLIP": (lambda **o: M.CLIP(image_size=8, hidden_channels=(2,), hidden_features=6,
                                latent_features=3, in_features=9, **o),
             lambda rng: (_unit(1, 8, 8)(rng), _tokens(9, 4)(rng)), M.CLIPConfig),
    "SimCLR": (lambda **o: M.SimCLR(image_size=8, hidden_channels=(2,), hidden_features=6,
                                    latent_features=3, **o), _unit(1, 8, 8), M.SimCLRConfig),
    "DeepCluster": (lambda **o: M.DeepCluster(image_size=8, hidden_channels=(2,),
                                              hidden_features=6, latent_features=3,
                                              n_clusters=2, **o),
                    _unit(1, 8, 8), M.DeepClusterConfig),
    # issue 18 (part b): CMC's batch is (images, dataset indices = memory slots)
    "CMC": (lambda **o: M.CMC(image_size=8, hidden_channels=(2,), hidden_features=6,
                              latent_features=3, memory_size=7, num_negatives=3, **o),
            lambda rng: (_unit(1, 8, 8)(rng), tl.tensor(rng.permutation(7)[:5])),
            M.CMCConfig),
    "SimCSE": (lambda **o: M.SimCSE(in_features=12, hidden_features=8, num_layers=1,
                                    num_heads=2, block_size=6, **o),
               lambda rng: tl.tensor(rng.integers(5, 12, (5, 6))), M.SimCSEConfig),
    "Flow": (lambda **o: M.maf_mnist(in_channels=1, image_size=4, hidden_features=8, steps=1,
                                     **o), _dequantised, M.ImageFlowConfig),
    # issue 22
    "HMM": (lambda **o: M.HMM(latent_features=3, in_features=7, sample_length=6, **o),
            _tokens(7, 6), M.HMMConfig),
    # family 6 (issue 17): Boltzmann machines, energy-based models, GLO
    "RBM": (lambda **o: M.RBM(in_features=12, hidden_features=6, **o), _binary(12),
            M.RBMConfig),
    "DBN": (lambda **o: M.DBN(in_features=12, hidden_features=(6, 4), **o), _binary(12),
            M.DBNConfig),
    "EBM": (lambda **o: M.EBM(in_features=2, hidden_features=(8,), buffer_size=20,
                              langevin_steps=2, **o), _unit(2), M.EBMConfig),
    "GLO": (lambda **o: M.GLO(num_codes=8, latent_features=3, hidden_features=(8,), **o),
            _unit(784), M.GLOConfig),
    # self-supervised language (issue 20)
    "Word2Vec": (lambda **o: M.Word2Vec(in_features=7, latent_features=4, negative=2, **o),
                 _tokens(7, 5), M.Word2VecConfig),
    "BERT": (lambda **o: M.BERT(in_features=12, hidden_features=8, num_layers=1, num_heads=2,
                                block_size=6, mask_prob=0.5, **o),
             lambda rng: tl.tensor(rng.integers(5, 12, (5, 6))), M.BERTConfig),
    "ICT": (lambda **o: M.ICT(in_features=12, hidden_features=8, latent_features=4,
                              num_layers=1, num_heads=2, block_size=6, **o),
            lambda rng: tl.tensor(rng.integers(5, 12, (5, 2, 6))), M.ICTConfig),
    "PretextBERT": (lambda **o: M.PretextBERT(in_features=12, hidden_features=8, num_layers=1,
                                              num_heads=2, block_size=6, objective="delete",
                                              delete_prob=0.5, **o),
                    lambda rng: tl.tensor(rng.integers(5, 12, (5, 6))), M.PretextBERTConfig),
    # issue 22: training methods and the text VAE
    "NoisyStudent": (lambda **o: M.NoisyStudent(in_features=12, hidden_features=8,
                                                out_features=3, **o),
                     _unit(12), M.NoisyStudentConfig),
    "DistAug": (lambda **o: M.DistAug(in_features=16, image_size=4, hidden_features=(8,),
                                      **o), _binary(16), M.DistAugConfig),
    "TextVAE": (lambda **o: M.TextVAE(in_features=9, embedding_features=4, hidden_features=5,
                                      latent_features=2, sample_length=6, **o),
                lambda rng: tl.tensor(rng.integers(4, 9, (5, 6))), M.TextVAEConfig),
    # issue 21: dual supervised learning, a labelled batch (binary images, labels)
    "DualSupervised": (lambda **o: M.DualSupervised(in_features=12, out_features=3,
                                                    hidden_features=(6,),
                                                    density_hidden_features=(8,), **o),
                       lambda rng: (_binary(12)(rng), tl.tensor(rng.integers(0, 3, 5))),
                       M.DualSupervisedConfig),
    # issue 21: an unpaired batch (source word vectors, target word vectors)
    "MUSE": (lambda **o: M.MUSE(in_features=6, hidden_features=8, **o),
             lambda rng: (_unit(6)(rng), _unit(6)(rng)), M.MUSEConfig),
    # translation (issue 21): language A ids 4..11, B ids 12..19, then <eos> (2)
    "UnsupervisedTranslation": (lambda **o: M.UnsupervisedTranslation(
        in_features=20, embedding_features=4, hidden_features=5, max_length=5, **o),
        lambda rng: _sentence_pair(rng), M.UnsupervisedTranslationConfig),
    "JointDual": (lambda **o: M.JointDual(in_features=20, embedding_features=4,
                                          hidden_features=5, max_length=5, **o),
                  lambda rng: _sentence_pair(rng) * 2, M.JointDualConfig),
}

MODEL_CLASSES = sorted(name for name in M.__all__
                       if inspect.isclass(getattr(M, name))
                       and issubclass(getattr(M, name), nn.Module)
                       and callable(getattr(getattr(M, name), "loss", None)))


def test_all_is_explicit_and_importable():
    assert len(M.__all__) == len(set(M.__all__))
    for name in M.__all__:
        assert hasattr(M, name), name


def test_every_model_class_has_a_tiny_entry():
    assert MODEL_CLASSES, "no model classes found in tinylatent.models.__all__"
    missing = [n for n in MODEL_CLASSES if n not in TINY]
    assert not missing, f"add a TINY entry in tests/test_model_contract.py for {missing}"
    assert set(TINY) <= set(MODEL_CLASSES), sorted(set(TINY) - set(MODEL_CLASSES))


def _build(name):
    build, batch, _ = TINY[name]
    tl.manual_seed(0)
    model = build()
    assert isinstance(model, getattr(M, name)), (name, type(model))
    return model, batch(np.random.default_rng(0))


@pytest.mark.parametrize("name", sorted(TINY))
def test_loss_returns_scalar_and_tensor_metrics(name):
    model, x = _build(name)
    loss, metrics = model.loss(x)
    assert isinstance(loss, tl.Tensor) and loss.shape == () and loss.requires_grad
    assert np.isfinite(loss.item())
    assert "loss" in metrics, (name, sorted(metrics))
    for key, value in metrics.items():
        assert isinstance(value, tl.Tensor), (name, key, type(value))
        assert value.shape == () and not value.requires_grad, (name, key)
    np.testing.assert_allclose(metrics["loss"].item(), loss.item(), rtol=1e-6)
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert any(g is not None and np.any(g.numpy() != 0) for g in grads), name


@pytest.mark.parametrize("name", sorted(TINY))
def test_declared_capabilities_have_the_contract_shapes(name):
    model, batch = _build(name)
    x = batch[0] if isinstance(batch, tuple) else batch
    model.eval()
    n = len(x)
    checked = []
    if hasattr(model, "log_prob"):
        with tl.no_grad():
            lp = model.log_prob(x)
        assert lp.shape == (n,) and np.all(np.isfinite(lp.numpy())), (name, lp.shape)
        checked.append("log_prob")
    if hasattr(model, "sample"):
        a = model.sample(3, generator=tl.Generator(1))
        b = model.sample(3, generator=tl.Generator(1))
        assert a.shape[0] == 3 and a.shape[1:] == x.shape[1:], (name, a.shape)
        # reproducible by generator
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
        checked.append("sample")
    if hasattr(model, "encode"):
        with tl.no_grad():
            z = model.encode(x)
        assert isinstance(z, tl.Tensor) and z.ndim == 2 and z.shape[0] == n, (name, z.shape)
        checked.append("encode")
    if hasattr(model, "reconstruct"):
        x_hat = model.reconstruct(x)
        assert x_hat.shape[0] == n and x_hat.numel() == x.numel() and not x_hat.requires_grad
        checked.append("reconstruct")
    assert checked, f"{name} declares none of log_prob / sample / encode / reconstruct"


@pytest.mark.parametrize("name", sorted(TINY))
def test_config_is_frozen_and_overrides_are_validated(name):
    build, _, config_cls = TINY[name]
    model, _ = _build(name)
    if name == "Flow":        # composed: the builder takes the config
        with pytest.raises(TypeError, match=r"maf_mnist: unknown config key\(s\) \['hiden'\]"):
            build(hiden=3)
        return
    cfg = model.config
    assert isinstance(cfg, config_cls) and dataclasses.is_dataclass(cfg)
    field = dataclasses.fields(cfg)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(cfg, field, getattr(cfg, field))
    cls = type(model)
    with pytest.raises(TypeError, match=rf"{cls.__name__}: unknown config key\(s\) \['hiden'\]"):
        build(hiden=3)
    # the config instance and keyword overrides build the same sizes
    again = cls(cfg)
    assert again.config == cfg
    assert [p.shape for p in again.parameters()] == [p.shape for p in model.parameters()]
    with pytest.raises(TypeError, match=f"{cls.__name__}: config must be a"):
        cls(object())


def test_sizes_follow_one_naming_scheme():
    """in_features / hidden_features / latent_features (or in_channels / image_size /
    hidden_channels for images) across the zoo: no input_dim, code_dim, hidden, features."""
    old = {"input_dim", "hidden_dim", "latent_dim", "code_dim", "hidden", "features",
           "latent", "hidden_sizes", "vocab_size", "channels", "size"}
    for name in M.__all__:
        obj = getattr(M, name)
        if inspect.isclass(obj) and dataclasses.is_dataclass(obj):
            names = {f.name for f in dataclasses.fields(obj)}
            assert not names & old, (name, sorted(names & old))
            assert obj.__dataclass_params__.frozen, f"{name} is not frozen"
