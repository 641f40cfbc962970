"""The model catalog, one file per family. `from tinylatent.models import VAE` works for the
models below; helpers and building blocks stay in their family's module
(e.g. `tinylatent.models.flow_transforms.AffineCoupling`). Data preparation (bag-of-words
text, image patches, binarisation / dequantisation, 2-D toy sets) lives in `tinylatent.data`.

Family (MISSION.md catalog)           module
1. classical latent-factor baselines   classical, gaussian_mixture, patch_features, hmm, lda
2. autoencoders and retrieval          autoencoders, stacked_autoencoder, retrieval
3. VAEs                                vae, planar_vae, text_vae
4. autoregressive density models       autoregressive (MADE, NADE), pixelcnn, wavenet,
                                       language_model, transformer_lm, distaug
5. normalizing flows                   flow_transforms, flow_image_transforms, flows,
                                       kernel_density (the 2-D reference)
6. adversarial, energy, latent optim.  gan, dcgan, boltzmann (+ ais), ebm, glo
7. contrastive learning                metric_learning, simclr, clip, deepcluster
8. pretext tasks and masked modelling  pretext (rotation, jigsaw), relative_patch, exemplar,
                                       mae, video_pretext, order_verification
9. self-supervised language            word2vec, bert, bert_pretext, ict
10. learning to map, dual learning     dual, muse (muse_adversarial, muse_similarity),
                                       joint_dual, unsupervised_translation
11. training methods                   noisy_student (SAM: tl.optim; Hessian: tl.hessian)

Writing a model
---------------
Every trainable model (an `nn.Module`) follows one contract, checked for every class in
`__all__` by tests/test_model_contract.py:

* Configuration: a frozen dataclass `<Model>Config`, taken as
  `__init__(self, config=None, **overrides)` and resolved with
  `self.config = resolve_config(self, <Model>Config, config, overrides)`
  (tinylatent/models/config.py): `Model()`, `Model(Config(...))` and `Model(key=value)` all
  work, and an unknown key raises a TypeError naming the model and the key before any layer
  is built. Keyword-only extras that are not configuration (an init `generator=`) may follow.
* Sizes are named as PyTorch names them: `in_features` (the data dimension, flattened: 784 for
  MNIST, the vocabulary size for bags of words), `hidden_features` (an int, or a tuple of widths
  for a stack of layers), `latent_features` (the code / latent dimension). Image models use
  `in_channels`, `image_size` and `hidden_channels` (or `hidden_features` for the width of a
  conditioner network); `out_features` where a model's output is not the data.
* `loss(batch) -> (loss, metrics)`: `loss` is the scalar Tensor to minimise; `metrics` is a
  dict of detached scalar Tensors that always holds "loss" (plus e.g. "nll", "neg_elbo",
  "kl"). `loss` never calls `.item()` (a host sync on a GPU); the caller converts with
  `float(v.item())` when it logs.
* Capabilities, by method name, wherever they apply:
    log_prob(x) -> (B,)          exact log-density / log-mass per example (density models)
    sample(n, generator=None)    n draws from the model (generative models)
    encode(x) -> (B, D)          the representation (for a VAE: the posterior mean)
    reconstruct(x)               x_hat, without a graph (autoencoders)
* Likelihoods, priors and KL terms come from `tl.distributions` (Bernoulli, Normal,
  Categorical, kl_divergence, ...), never a hand-written log-density.
* A new model class gets one entry in `TINY` in tests/test_model_contract.py: a function that
  builds it small and a batch to run `loss` on; the test fails for a model in `__all__`
  without one.
* Classical estimators (PCA, KMeans, GaussianMixture, PatchFeatures, KernelDensity) are fitted
  in closed form or by EM, scikit-learn style: `fit(X)` returns self, then
  `transform` / `predict` / `log_prob` / `score`.
"""
from .autoencoders import (AEConfig, Autoencoder, ContractiveAE, ConvAEConfig, ConvAutoencoder,
                           DenoisingAE, SparseAE)
from .autoregressive import MADE, NADE, MADEConfig, NADEConfig
from .bert import BERT, BERTConfig
from .bert_pretext import PretextBERT, PretextBERTConfig
from .boltzmann import DBN, RBM, DBNConfig, RBMConfig
from .classical import PCA, KMeans
from .clip import CLIP, CLIPConfig
from .cmc import CMC, CMCConfig
from .colorization import Colorization, ColorizationConfig
from .config import resolve_config
from .cyclegan import CycleGAN, CycleGANConfig
from .dcgan import DCGAN, WGANGP, DCGANConfig, WGANGPConfig
from .deepcluster import DeepCluster, DeepClusterConfig
from .distaug import DistAug, DistAugConfig
from .dual import DualSupervised, DualSupervisedConfig
from .ebm import EBM, EBMConfig
from .exemplar import Exemplar, ExemplarConfig
from .flow_image_transforms import (ActNorm, InvertibleConv1x1, LogitTransform,
                                    MultiScaleTransform, Squeeze)
from .flow_transforms import (AffineCoupling, CompositeTransform, InverseTransform,
                              MaskedAffineAutoregressive, Permutation, PlanarFlow,
                              RandomPermutation, ReversePermutation, Transform)
from .flows import (Flow, ImageFlowConfig, StandardNormal, bits_per_dim, glow_mnist, maf_2d,
                    maf_mnist, planar_flow_2d, realnvp_2d, realnvp_mnist)
from .gan import GAN, GANConfig
from .gaussian_mixture import GaussianMixture
from .glo import GLO, GLOConfig
from .hmm import HMM, HMMConfig
from .ict import ICT, ICTConfig
from .joint_dual import JointDual, JointDualConfig
from .kernel_density import KernelDensity
from .language_model import LSTMLanguageModel, LSTMLMConfig
from .lda import LDA
from .mae import MAE, MAEConfig
from .metric_learning import SiameseConfig, SiameseNet, TripletConfig, TripletNet
from .muse import MUSE, MUSEConfig
from .noisy_student import NoisyStudent, NoisyStudentConfig
from .order_verification import OrderVerification, OrderVerificationConfig
from .patch_features import LogisticRegression, PatchFeatures, PatchFeaturesConfig
from .pixelcnn import GatedPixelCNN, GatedPixelCNNConfig, PixelCNN, PixelCNNConfig
from .planar_vae import PlanarVAE, PlanarVAEConfig
from .pretext import Jigsaw, JigsawConfig, RotationNet, RotationNetConfig
from .relative_patch import RelativePatch, RelativePatchConfig
from .retrieval import BagOfWordsAE, BoWAEConfig, precision_at_k
from .simclr import SimCLR, SimCLRConfig
from .simcse import SimCSE, SimCSEConfig
from .stacked_autoencoder import LinearAutoencoder, StackedAutoencoder
from .text_vae import TextVAE, TextVAEConfig
from .tracking import TrackingByColorization, TrackingConfig
from .transformer_lm import TransformerLM, TransformerLMConfig
from .unsupervised_translation import UnsupervisedTranslation, UnsupervisedTranslationConfig
from .vae import VAE, VAEConfig
from .video_pretext import ArrowOfTime, ArrowOfTimeConfig, FramePredictor, FramePredictorConfig
from .wavenet import WaveNet, WaveNetConfig
from .word2vec import Word2Vec, Word2VecConfig

__all__ = [
    # trainable models (nn.Module, the contract above) and their configs, by family
    # 1 latent structure
    "HMM", "HMMConfig",
    # 2 autoencoders
    "Autoencoder", "DenoisingAE", "SparseAE", "ContractiveAE", "AEConfig",
    "ConvAutoencoder", "ConvAEConfig", "StackedAutoencoder", "LinearAutoencoder",
    "BagOfWordsAE", "BoWAEConfig",
    # 3 VAEs
    "VAE", "VAEConfig", "PlanarVAE", "PlanarVAEConfig", "TextVAE", "TextVAEConfig",
    # 4 autoregressive
    "MADE", "MADEConfig", "NADE", "NADEConfig", "PixelCNN", "PixelCNNConfig",
    "GatedPixelCNN", "GatedPixelCNNConfig", "WaveNet", "WaveNetConfig",
    "LSTMLanguageModel", "LSTMLMConfig", "TransformerLM", "TransformerLMConfig",
    "DistAug", "DistAugConfig",
    # 5 flows
    "Flow", "ImageFlowConfig",
    # 6 adversarial, energy-based, latent optimisation
    "GAN", "GANConfig", "DCGAN", "DCGANConfig", "WGANGP", "WGANGPConfig",
    "CycleGAN", "CycleGANConfig",
    "RBM", "RBMConfig", "DBN", "DBNConfig", "EBM", "EBMConfig", "GLO", "GLOConfig",
    # 7 contrastive
    "SiameseNet", "SiameseConfig", "TripletNet", "TripletConfig", "SimCLR", "SimCLRConfig",
    "CLIP", "CLIPConfig", "DeepCluster", "DeepClusterConfig",
    "CMC", "CMCConfig", "SimCSE", "SimCSEConfig",
    # 8 pretext tasks and masked modelling
    "RotationNet", "RotationNetConfig", "Jigsaw", "JigsawConfig", "RelativePatch",
    "RelativePatchConfig", "Exemplar", "ExemplarConfig", "MAE", "MAEConfig",
    "FramePredictor", "FramePredictorConfig", "ArrowOfTime", "ArrowOfTimeConfig",
    "OrderVerification", "OrderVerificationConfig",
    "Colorization", "ColorizationConfig", "TrackingByColorization", "TrackingConfig",
    # 9 self-supervised language
    "Word2Vec", "Word2VecConfig", "BERT", "BERTConfig", "ICT", "ICTConfig",
    "PretextBERT", "PretextBERTConfig",
    # 10 learning to map and dual learning
    "DualSupervised", "DualSupervisedConfig", "MUSE", "MUSEConfig", "JointDual",
    "JointDualConfig", "UnsupervisedTranslation", "UnsupervisedTranslationConfig",
    # 11 training methods
    "NoisyStudent", "NoisyStudentConfig",
    # flow builders, base distribution and transforms
    "planar_flow_2d", "realnvp_2d", "maf_2d", "realnvp_mnist", "glow_mnist", "maf_mnist",
    "StandardNormal", "Transform", "CompositeTransform", "InverseTransform", "PlanarFlow",
    "AffineCoupling", "Permutation", "ReversePermutation", "RandomPermutation",
    "MaskedAffineAutoregressive", "ActNorm", "InvertibleConv1x1", "Squeeze",
    "MultiScaleTransform", "LogitTransform",
    # classical estimators (fit / transform / predict)
    "PCA", "KMeans", "GaussianMixture", "PatchFeatures", "PatchFeaturesConfig",
    "KernelDensity", "LogisticRegression", "LDA",
    # evaluation helpers and the config resolver
    "bits_per_dim", "precision_at_k", "resolve_config",
]
