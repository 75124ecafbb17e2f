"""The embedding cache serves everything a frozen-encoder step needs, without touching the images."""

from __future__ import annotations

import torch

from medsam_echo.training.embedding_cache import EmbeddedSet, EmbeddingCache


class _Images(torch.utils.data.Dataset):
    """Preprocessed-set stand-in that counts reads."""

    def __init__(self) -> None:
        self.reads = 0
        self.epoch = None

    def __len__(self) -> int:
        return 3

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int) -> dict:
        self.reads += 1
        labels = torch.full((16, 16), index, dtype=torch.uint8)
        return {"index": index, "pixel_values": torch.full((3, 16, 16), float(index)), "labels": labels,
                "valid_size": torch.tensor([16, 12 - index])}


def test_epochs_from_the_cache_read_no_image(tmp_path):
    images, keys = _Images(), ["a", "b", "c"]
    cache = EmbeddingCache(tmp_path, "model")
    assert cache.fill(images, keys, lambda x: x[:, :2, :4, :4] * 2, batch_size=2) == 3
    reads = images.reads
    embedded = EmbeddedSet(images, cache, keys)
    embedded.set_epoch(5)
    items = [embedded[i] for i in range(3)]
    assert images.reads == reads and images.epoch == 5
    for index, item in enumerate(items):
        assert set(item) == {"index", "labels", "valid_size", "image_embeddings"}
        assert item["index"] == index
        torch.testing.assert_close(item["image_embeddings"], torch.full((2, 4, 4), 2.0 * index))
        assert item["labels"].dtype == torch.uint8 and int(item["labels"].max()) == index
        assert item["valid_size"].tolist() == [16, 12 - index]
