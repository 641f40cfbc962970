"""Data: datasets, a batching DataLoader, and MNIST-family loaders with an embedded fallback.

    from tinylatent.data import MNIST, DataLoader
    train = MNIST("train", flatten=True)          # (x (784,), y) items, x in [0, 1]
    for x, y in DataLoader(train, batch_size=128, shuffle=True):
        ...                                       # x: Tensor (128, 784), y: Tensor (128,)
"""
from .dataset import Dataset, Subset, TensorDataset, can_take, random_split
from .images import make_grid, save_image_grid
from .loader import DataLoader, RedrawLoader, default_collate
from .mnist import (EMBEDDED_MNIST, MNIST, FashionMNIST, IDXFormatError, cache_dir, load_mnist,
                    read_idx)

__all__ = ["Dataset", "TensorDataset", "Subset", "random_split", "can_take", "DataLoader",
           "RedrawLoader",
           "default_collate", "load_mnist", "read_idx", "MNIST", "FashionMNIST",
           "IDXFormatError", "cache_dir", "EMBEDDED_MNIST", "make_grid", "save_image_grid"]

# Text, tokenizers, augmentations, Colored/Moving MNIST, CIFAR-10 and audio (issue 11, sec. 2)
from . import audio, cifar, colored_mnist, text, tokenizers, transforms
from .audio import (AudioWindows, load_speech, load_wav, load_wav_folder, mu_law_decode,
                    mu_law_encode)
from .cifar import CIFAR10, load_cifar10, read_cifar_bin
from .colored_mnist import ColoredMNIST, colorize_digits
from .moving_mnist import moving_mnist
from .text import (InverseClozePairs, LanguageModelStream, NextSentencePairs, NextSpanPairs,
                   VerseDataset, load_botchan, load_kjv, split_sentences)
from .tokenizers import BPETokenizer, CharTokenizer, WordTokenizer, load_tokenizer
from .verse_pairs import chapter_triples, corrupt_words  # noqa: E402  (issue 18, SimCSE)

# (the module tinylatent.data.moving_mnist is reached by import; its name here is the function)
__all__ += ["chapter_triples", "corrupt_words"]
__all__ += ["audio", "cifar", "colored_mnist", "text", "tokenizers", "transforms",
            "AudioWindows", "load_speech", "load_wav", "load_wav_folder",
            "mu_law_encode", "mu_law_decode", "CIFAR10", "load_cifar10", "read_cifar_bin",
            "ColoredMNIST", "colorize_digits", "moving_mnist", "load_kjv", "load_botchan",
            "split_sentences", "LanguageModelStream", "VerseDataset", "NextSentencePairs",
            "NextSpanPairs", "InverseClozePairs", "CharTokenizer", "WordTokenizer", "BPETokenizer",
            "load_tokenizer"]

# data preparation moved out of tinylatent.models (issue 11)
from .bow import KJV_BOW_PATH, load_kjv_bow, tfidf
from .patches import extract_patches
from .pixels import binarize, dequantize
from .toy2d import (checkerboard, eight_gaussians, eight_gaussians_modes, rings, sample_toy,
                    two_moons)

__all__ += ["load_kjv_bow", "tfidf", "KJV_BOW_PATH", "extract_patches", "binarize",
            "dequantize", "two_moons", "rings", "checkerboard", "sample_toy", "eight_gaussians",
           "eight_gaussians_modes"]
from .sampler import DistributedSampler  # noqa: E402

__all__ += ["DistributedSampler"]

# Two languages with a known dictionary (issue 21, the learning-to-map family)
from . import bilingual  # noqa: E402
from .bilingual import Cipher, CipherPair, cipher_pair, load_parallel_text  # noqa: E402

__all__ += ["bilingual", "Cipher", "CipherPair", "cipher_pair", "load_parallel_text"]

# word vectors in the word2vec text format (issue 21)
from .word_vectors import (WordVectorFormatError, load_word_vectors,  # noqa: E402
                           save_word_vectors)

__all__ += ["load_word_vectors", "save_word_vectors", "WordVectorFormatError"]
