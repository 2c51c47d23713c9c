"""Data sources: generated demo shapes, Imagenette, any ImageFolder tree.

Every source produces a :class:`DatasetIndex` (class names + per-split
records + skipped images); loading into tensors is in :mod:`.loading`.
"""

from workers.data.folder import index_image_folder
from workers.data.generated import GENERATED_CLASSES, GeneratedDatasetConfig, generate_dataset
from workers.data.imagenette import DEFAULT_DISPLAY_NAMES, IMAGENETTE_WNIDS, index_imagenette
from workers.data.loading import ImageDataset, load_images, load_masks, preload
from workers.data.records import DatasetIndex, ImageRecord, SkippedImage, probe_image
from workers.data.transforms import Preprocessing

__all__ = [
    "DEFAULT_DISPLAY_NAMES",
    "GENERATED_CLASSES",
    "IMAGENETTE_WNIDS",
    "DatasetIndex",
    "GeneratedDatasetConfig",
    "ImageDataset",
    "ImageRecord",
    "Preprocessing",
    "SkippedImage",
    "generate_dataset",
    "index_image_folder",
    "index_imagenette",
    "load_images",
    "load_masks",
    "preload",
    "probe_image",
]
