"""Evaluation tools shared by every model family (`tl.eval`).

Representations (frozen features, one row per item):
    linear_probe, LogisticRegression      multinomial logistic regression on the features
    select_l2                             its penalty chosen on a validation split
    knn_accuracy, knn_predict             k-NN classification (majority or Wu et al. 2018)
    nearest_neighbours, precision_at_k, recall_at_k, hit_rate_at_k   retrieval by label
Clusterings (an assignment per item):
    cluster_accuracy                      accuracy under the best cluster -> class matching
    normalized_mutual_info, contingency_matrix
Generators of 28x28 images:
    SampleQuality                         Frechet distance in a classifier's feature space,
                                          class histogram and mode coverage
    frechet_distance, gaussian_statistics, ImageClassifier, train_image_classifier

Every tool takes Tensors (CPU or CUDA) or NumPy arrays and returns Python floats or NumPy
arrays; none of them needs scikit-learn (the tests compare them with it).
"""
from .clustering import cluster_accuracy, contingency_matrix, normalized_mutual_info
from .linear_probe import LogisticRegression, linear_probe, select_l2
from .neighbours import (hit_rate_at_k, knn_accuracy, knn_predict, nearest_neighbours,
                         precision_at_k, recall_at_k)
from .sample_quality import (MNIST_CLASSIFIER, ClassifierConfig, ImageClassifier,
                             SampleQuality, frechet_distance, gaussian_statistics,
                             load_classifier, save_classifier, train_image_classifier)

__all__ = ["LogisticRegression", "linear_probe", "select_l2", "knn_accuracy", "knn_predict",
           "nearest_neighbours", "precision_at_k", "recall_at_k", "hit_rate_at_k",
           "cluster_accuracy", "normalized_mutual_info", "contingency_matrix",
           "SampleQuality", "frechet_distance", "gaussian_statistics", "ImageClassifier",
           "ClassifierConfig", "train_image_classifier", "save_classifier", "load_classifier",
           "MNIST_CLASSIFIER"]

# word vectors (issue 20)
from .word_vectors import analogy_accuracy, load_analogies, neighbour_overlap  # noqa: E402

__all__ += ["analogy_accuracy", "load_analogies", "neighbour_overlap"]

# cross-lingual embedding mapping (issue 21: MUSE)
from .cross_lingual import (csls, mean_cosine_criterion, mean_topk_cosine,  # noqa: E402
                            mutual_dictionary, normalize_embeddings, orthogonalize,
                            plot_alignment, procrustes, translate_ids,
                            translation_precision)

__all__ += ["plot_alignment", "normalize_embeddings", "procrustes", "orthogonalize",
            "mean_topk_cosine", "csls", "translate_ids", "mutual_dictionary",
            "mean_cosine_criterion", "translation_precision"]

# contrastive representations (issue 18)
from .pictures import (bar_picture, embedding_picture, matrix_picture,  # noqa: E402
                       retrieval_picture)
from .representations import alignment, frozen_features, uniformity  # noqa: E402

__all__ += ["frozen_features", "alignment", "uniformity", "embedding_picture",
            "retrieval_picture", "matrix_picture", "bar_picture"]

# translation (issue 21)
from .bleu import bleu, ngram_statistics  # noqa: E402

__all__ += ["bleu", "ngram_statistics"]

# lexical retrieval baselines (issue 20: ICT)
from .lexical import bm25_scores, tfidf_scores  # noqa: E402

__all__ += ["bm25_scores", "tfidf_scores"]
