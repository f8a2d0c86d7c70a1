"""Processor of GRAFT models: the satellite image processor plus CLIP's tokenizer.

This file is uploaded to the Hub as remote code: it imports transformers only.
"""

from __future__ import annotations

from typing import Any

from transformers import BatchFeature
from transformers.processing_utils import ProcessorMixin


class GraftProcessor(ProcessorMixin):
    r"""Wraps a [`GraftImageProcessor`] and a CLIP tokenizer into one processor.

    Args:
        image_processor: The satellite image processor.
        tokenizer: A CLIP tokenizer (`CLIPTokenizer`).

    Example:
        ```python
        >>> inputs = processor(text=["farmland", "a lake"], images=[tile], return_tensors="pt")
        >>> inputs["pixel_values"].shape, inputs["input_ids"].shape
        (torch.Size([1, 3, 224, 224]), torch.Size([2, 77]))
        ```
    """

    def __init__(self, image_processor: Any = None, tokenizer: Any = None, **kwargs: Any) -> None:
        if image_processor is None:
            raise ValueError("GraftProcessor needs an image_processor (a GraftImageProcessor)")
        if tokenizer is None:
            raise ValueError("GraftProcessor needs a tokenizer (a CLIPTokenizer; see graft_hf.load_clip_tokenizer)")
        super().__init__(image_processor, tokenizer)

    def __call__(
        self,
        text: str | list[str] | None = None,
        images: Any = None,
        return_tensors: str | None = "pt",
        padding: bool | str = "max_length",
        truncation: bool = True,
        max_length: int | None = None,
        **kwargs: Any,
    ) -> BatchFeature:
        """Tokenise `text` and/or prepare `images`.

        Args:
            text: A query or a list of queries.
            images: Anything [`GraftImageProcessor`] accepts (PIL, arrays, tensors, GeoTIFF paths).
            return_tensors: Tensor type (`"pt"` by default).
            padding: Tokenizer padding; CLIP pads to its 77-token context by default.
            truncation: Truncate long queries to the context length.
            max_length: Context length (the tokenizer's, 77, by default).
            **kwargs: Passed to the image processor (e.g. `input_data_format`).

        Returns:
            `BatchFeature` with `input_ids`/`attention_mask` and/or `pixel_values`.
        """
        if text is None and images is None:
            raise ValueError("pass text, images or both")
        data: dict[str, Any] = {}
        if text is not None:
            if isinstance(text, (list, tuple)) and len(text) == 0:
                raise ValueError("empty list of texts: pass at least one query")
            max_length = max_length or getattr(self.tokenizer, "model_max_length", 77)
            if not isinstance(max_length, int) or max_length > 10_000:
                max_length = 77
            encoding = self.tokenizer(
                text, padding=padding, truncation=truncation, max_length=max_length, return_tensors=return_tensors
            )
            data.update(encoding)
        if images is not None:
            data.update(self.image_processor(images, return_tensors=return_tensors, **kwargs))
        return BatchFeature(data=data, tensor_type=return_tensors)

    def batch_decode(self, *args: Any, **kwargs: Any) -> list[str]:
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args: Any, **kwargs: Any) -> str:
        return self.tokenizer.decode(*args, **kwargs)

    @property
    def model_input_names(self) -> list[str]:
        return list(dict.fromkeys(self.tokenizer.model_input_names + self.image_processor.model_input_names))


__all__ = ["GraftProcessor"]
