"""The model catalog, one file per family. `from tinylatent.models import VAE` works for the
models below; helpers and building blocks stay in their family's module
(e.g. `tinylatent.models.flow_transforms.AffineCoupling`).

Family (MISSION.md catalog)           module
1. classical latent-factor baselines   classical, gaussian_mixture, patch_features
2. autoencoders and retrieval          autoencoders, stacked_autoencoder, retrieval
3. VAEs                                vae, planar_vae
4. autoregressive density models       autoregressive (MADE, NADE)
5. normalizing flows                   flow_transforms, flow_image_transforms, flows, toy2d
"""
from .autoencoders import (AEConfig, Autoencoder, ContractiveAE, ConvAEConfig, ConvAutoencoder,
                           DenoisingAE, SparseAE)
from .autoregressive import MADE, NADE, MADEConfig, NADEConfig
from .classical import PCA, KMeans
from .flow_image_transforms import (ActNorm, InvertibleConv1x1, LogitTransform,
                                    MultiScaleTransform, Squeeze)
from .flow_transforms import (AffineCoupling, CompositeTransform, InverseTransform,
                              MaskedAffineAutoregressive, Permutation, PlanarFlow,
                              RandomPermutation, ReversePermutation, Transform)
from .flows import (Flow, ImageFlowConfig, StandardNormal, bits_per_dim, dequantize, glow_mnist,
                    maf_2d, maf_mnist, planar_flow_2d, realnvp_2d, realnvp_mnist)
from .gaussian_mixture import GaussianMixture
from .patch_features import LogisticRegression, PatchFeatures, PatchFeaturesConfig
from .planar_vae import PlanarVAE, PlanarVAEConfig
from .retrieval import BagOfWordsAE, BoWAEConfig, load_kjv_bow, precision_at_k
from .stacked_autoencoder import LinearAutoencoder, StackedAutoencoder
from .vae import VAE, VAEConfig
