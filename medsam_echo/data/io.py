"""Read and write 2-D echo images and label maps, with their pixel spacing.

Every reader returns arrays indexed ``[y, x]`` (apex up for CAMUS) and spacing ``(sx, sy)`` in mm per
pixel. Medical formats (NIfTI ``.nii`` / ``.nii.gz``, MetaImage ``.mhd`` / ``.mha``) go through SimpleITK,
whose ``GetArrayFromImage`` is already ``[y, x]`` and whose ``GetSpacing()`` is ``(x, y)``. Photo formats
(PNG, JPEG, TIFF) go through OpenCV and carry no spacing, so ``(1.0, 1.0)`` is returned.

Bad files raise :class:`DataError` naming the file: missing, truncated (incomplete gzip stream, short
NIfTI payload, short ``.raw``, PNG without ``IEND``, JPEG without end marker) or undecodable.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import struct
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

MEDICAL_SUFFIXES = (".nii", ".nii.gz", ".mhd", ".mha")
PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
IMAGE_SUFFIXES = MEDICAL_SUFFIXES + PHOTO_SUFFIXES
_NIFTI_MIN_HEADER = 348  # bytes of a NIfTI-1 header; the payload follows it


class DataError(ValueError):
    """A data file or annotation is missing, unreadable or inconsistent; the message names the file.

    Bytes of a path that are not UTF-8 are shown as ``\\xNN`` escapes, so the message prints anywhere.
    """

    def __init__(self, message: str) -> None:
        super().__init__(printable(message))


def printable(text: str) -> str:
    """``text`` with the undecodable bytes of file names (surrogate escapes) shown as ``\\xNN``."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def display_path(path: str | Path) -> str:
    """``path`` as text that prints anywhere (see :func:`printable`)."""
    return printable(os.fspath(path))


def is_utf8(path: str | Path) -> bool:
    """Whether ``path`` is valid UTF-8 (SimpleITK aborts the process on any other file name)."""
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@contextlib.contextmanager
def sitk_path(path: Path) -> Iterator[str]:
    """A UTF-8 name under which SimpleITK can open ``path``.

    A folder name that is not UTF-8 (a patient folder copied from another system) would make SimpleITK
    abort the whole process; the folder is reached through a temporary UTF-8 symlink instead, which
    keeps a MetaImage header's ``.raw`` beside it. A file name that is not UTF-8 is refused.
    """
    if is_utf8(path):
        yield str(path)
        return
    if not is_utf8(path.name):
        raise DataError(f"{path}: the file name is not valid UTF-8, which SimpleITK cannot open; rename the file")
    with tempfile.TemporaryDirectory(prefix="medsam-echo-") as tmp:
        link = Path(tmp) / "folder"
        try:
            os.symlink(path.parent.resolve(), link, target_is_directory=True)
        except OSError as err:
            raise DataError(f"{path}: the folder name is not valid UTF-8, which SimpleITK cannot open, and no "
                            f"link could be made ({err}); rename the folder") from None
        yield str(link / path.name)


def read_text(path: str | Path, what: str = "file") -> str:
    """The UTF-8 text of ``path``; a :class:`DataError` names the file when it is missing or not UTF-8."""
    path = Path(path)
    try:
        return path.read_bytes().decode("utf-8")
    except OSError as err:
        raise DataError(f"{path}: cannot read this {what} ({err.strerror or err})") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: this {what} is not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset "
                        f"{err.start}); save it as UTF-8") from None


def image_suffix(path: str | Path) -> str:
    """The lower-case image suffix of ``path`` (``".nii.gz"`` counts as one), or ``""`` if unsupported."""
    name = Path(path).name.lower()
    return next((s for s in sorted(IMAGE_SUFFIXES, key=len, reverse=True) if name.endswith(s)), "")


def _sitk():
    try:
        import SimpleITK
    except ImportError as err:  # pragma: no cover - SimpleITK is a core dependency
        raise ImportError("reading NIfTI / MetaImage files needs SimpleITK: pip install SimpleITK") from err
    return SimpleITK


def read_image(path: str | Path, *, allow_stack: bool = False) -> tuple[np.ndarray, tuple[float, float]]:
    """Read one image or label map.

    Args:
        path: a ``.nii``, ``.nii.gz``, ``.mhd``, ``.mha``, ``.png``, ``.jpg``, ``.jpeg`` or ``.tif`` file.
        allow_stack: accept a 3-D medical file (a sequence) and return it as ``(T, H, W)``.

    Returns:
        ``(array, (sx, sy))``: ``array`` is ``(H, W)``, ``(H, W, 3)`` (RGB) or, with ``allow_stack``,
        ``(T, H, W)``, in the file's dtype; spacing in mm per px along x and y.

    Raises:
        DataError: the file is missing, has an unsupported suffix, is truncated or cannot be decoded.
    """
    path = Path(path)
    suffix = image_suffix(path)
    if not suffix:
        raise DataError(f"{path}: unsupported image format; expected one of {', '.join(IMAGE_SUFFIXES)}")
    if not path.is_file():
        raise DataError(f"{path}: image file not found")
    if suffix in MEDICAL_SUFFIXES:
        return _read_medical(path, allow_stack)
    return _read_photo(path, suffix), (1.0, 1.0)


def _read_medical(path: Path, allow_stack: bool) -> tuple[np.ndarray, tuple[float, float]]:
    sitk = _sitk()
    try:
        with sitk_path(path) as name:
            image = sitk.ReadImage(name)
    except RuntimeError as err:
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else "unknown reason"
        raise DataError(f"{path}: unreadable or truncated image ({reason})") from err
    array = sitk.GetArrayFromImage(image)
    _check_nifti_payload(path, array.nbytes)
    spacing = image.GetSpacing()
    if array.ndim == 3 and array.shape[0] == 1 and image.GetNumberOfComponentsPerPixel() == 1:
        array = array[0]  # a 2-D frame stored as a 1-slice volume
    is_2d = array.ndim == 2 or (array.ndim == 3 and image.GetNumberOfComponentsPerPixel() > 1)
    if not is_2d and not (allow_stack and array.ndim == 3):
        raise DataError(f"{path}: expected a 2-D image, got an array of shape {array.shape}")
    return array, (float(spacing[0]), float(spacing[1]))


def _check_nifti_payload(path: Path, payload_bytes: int) -> None:
    """ITK zero-fills a short NIfTI instead of failing, and reads NaN / Inf pixels as 0: detect both here."""
    name = path.name.lower()
    if name.endswith(".nii.gz"):
        try:
            data = gzip.decompress(path.read_bytes())
        except (EOFError, OSError, zlib.error) as err:
            raise DataError(f"{path}: truncated or corrupt gzip stream ({err})") from err
    elif name.endswith(".nii"):
        data = path.read_bytes()
    else:
        return
    size = len(data)
    if size < _NIFTI_MIN_HEADER + payload_bytes:
        raise DataError(
            f"{path}: truncated NIfTI ({size} bytes, header + data need {payload_bytes + _NIFTI_MIN_HEADER})"
        )
    bad = _nifti_non_finite(data)
    if bad:
        raise DataError(f"{path}: {bad} non-finite (NaN / Inf) pixel values, which SimpleITK would read as 0")


_NIFTI_FLOATS = {16: "f4", 64: "f8"}  # NIfTI-1 datatype codes of float32 / float64


def _nifti_non_finite(data: bytes) -> int:
    """The number of NaN / Inf values in a NIfTI-1 float payload (0 for integer data or another header)."""
    order = next((o for o in "<>" if struct.unpack(f"{o}i", data[:4])[0] == _NIFTI_MIN_HEADER), None)
    if order is None:
        return 0
    dtype = _NIFTI_FLOATS.get(struct.unpack(f"{order}h", data[70:72])[0])
    if dtype is None:
        return 0
    offset = int(struct.unpack(f"{order}f", data[108:112])[0])
    values = np.frombuffer(data, np.dtype(order + dtype), offset=offset, count=(len(data) - offset) // int(dtype[1]))
    return int((~np.isfinite(values)).sum())


def _read_photo(path: Path, suffix: str) -> np.ndarray:
    raw = path.read_bytes()
    if suffix == ".png" and b"IEND" not in raw[-16:]:
        raise DataError(f"{path}: truncated PNG (no IEND chunk at the end)")
    if suffix in (".jpg", ".jpeg") and b"\xff\xd9" not in raw[-64:]:
        raise DataError(f"{path}: truncated JPEG (no end-of-image marker)")
    array = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise DataError(f"{path}: OpenCV could not decode this {suffix} file")
    if array.ndim == 3 and array.shape[2] == 1:
        return array[:, :, 0]
    if array.ndim == 3:
        code = cv2.COLOR_BGRA2RGB if array.shape[2] == 4 else cv2.COLOR_BGR2RGB
        return cv2.cvtColor(array, code)
    return array


def write_image(path: str | Path, array: np.ndarray, spacing: tuple[float, float] = (1.0, 1.0)) -> Path:
    """Write an image or label map; the parent folder is created.

    Args:
        path: target file; the suffix picks the format (see :func:`read_image`). MetaImage ``.mhd`` is
            written with an uncompressed ``.raw`` beside it, as in the CAMUS 2019 release.
        array: ``(H, W)``, ``(H, W, 3)`` uint8 RGB, or ``(T, H, W)`` (medical formats only; a frame
            stack; a uint8 stack of exactly 3 frames would read as RGB, so store such stacks as uint16).
            PNG takes uint8 / uint16, JPEG uint8 only.
        spacing: ``(sx, sy)`` mm per px, stored in NIfTI / MetaImage headers; ignored by photo formats.

    Returns:
        The path written.
    """
    path = Path(path)
    suffix = image_suffix(path)
    if not suffix:
        raise DataError(f"{path}: unsupported image format; expected one of {', '.join(IMAGE_SUFFIXES)}")
    array = np.asarray(array)
    if array.ndim not in (2, 3):
        raise DataError(
            f"{path}: cannot write an array of shape {array.shape}; expected (H, W), (H, W, 3) or (T, H, W)"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix in MEDICAL_SUFFIXES:
        _write_medical(path, array, spacing)
    else:
        _write_photo(path, suffix, array)
    return path


def _write_medical(path: Path, array: np.ndarray, spacing: tuple[float, float]) -> None:
    sitk = _sitk()
    is_rgb = array.ndim == 3 and array.shape[2] == 3 and array.dtype == np.uint8
    image = sitk.GetImageFromArray(np.ascontiguousarray(array), isVector=is_rgb)
    sx, sy = (float(s) for s in spacing)
    image.SetSpacing((sx, sy) if image.GetDimension() == 2 else (sx, sy, 1.0))
    if not is_utf8(path):
        raise DataError(f"{path}: the path is not valid UTF-8, which SimpleITK cannot write; choose another name")
    sitk.WriteImage(image, str(path), useCompression=path.name.lower().endswith(".gz"))


def _write_photo(path: Path, suffix: str, array: np.ndarray) -> None:
    allowed = (np.uint8,) if suffix in (".jpg", ".jpeg") else (np.uint8, np.uint16)
    if array.dtype not in allowed:
        names = " or ".join(np.dtype(t).name for t in allowed)
        raise DataError(f"{path}: {suffix} stores {names}, got {array.dtype}; convert or use .nii.gz")
    if array.ndim == 3 and array.shape[2] != 3:
        raise DataError(f"{path}: {suffix} stores (H, W) or (H, W, 3) arrays, got shape {array.shape}")
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(suffix, array)
    if not ok:
        raise DataError(f"{path}: OpenCV could not encode this array as {suffix}")
    path.write_bytes(encoded.tobytes())


def to_uint8(image: np.ndarray) -> np.ndarray:
    """``(H, W)`` / ``(H, W, 3)`` image of any dtype -> uint8 (min-max rescaled unless already uint8)."""
    if image.dtype == np.uint8:
        return image
    low, high = float(image.min()), float(image.max())
    return np.round((image.astype(np.float64) - low) * (255.0 / max(high - low, 1e-8))).astype(np.uint8)
