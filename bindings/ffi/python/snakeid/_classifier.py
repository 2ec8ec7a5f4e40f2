"""`snakeid.Classifier`: the library's classifier with Python's defaults, photos of any kind, and batches."""

from __future__ import annotations

import os
import sys
from typing import Any, Iterable, List, Optional, Sequence, Tuple, Union

from ._answer import Answer
from ._errors import SnakeIdError
from ._native import snakeid as ffi
from ._photo import PHOTO_SUFFIXES, photo_bytes

PathLike = Union[str, "os.PathLike[str]"]


class Classifier:
    """A loaded bundle with its compiled model. Build it once (hundreds of milliseconds) and share it: any number of
    threads may call ``identify`` at the same time.

    ``bundle``: None for the bundle inside the package, a path to a ``.snkb`` file or bundle folder, or a packed
    bundle's bytes. ``trusted_keys``: ed25519 public keys (hex); when given, a bundle not signed by one of them is
    refused with ``UntrustedBundle``. ``threads``: threads for one call (1 is best when several photos run at once).
    ``limits``: the largest photo a call accepts (``snakeid.Limits(max_bytes=, max_side=, max_pixels=)``, each
    defaulting to the library's: 64 MiB, 20 000 pixels a side, 100 megapixels); a larger one is ``InvalidImage``.
    """

    def __init__(self, bundle: Union[None, PathLike, bytes] = None, *, threads: int = 1,
                 trusted_keys: Optional[Sequence[str]] = None, limits: Optional[ffi.Limits] = None):
        if limits is not None and not isinstance(limits, ffi.Limits):
            raise TypeError(f"limits is a snakeid.Limits, not {type(limits).__name__}")
        keys = list(trusted_keys) if trusted_keys is not None else None
        if bundle is None:
            if keys is not None:
                raise TypeError("trusted_keys checks a bundle you pass; the package's own bundle is not signed")
            self._native = ffi.Classifier(threads, limits)
        elif isinstance(bundle, (bytes, bytearray, memoryview)):
            data = bytes(bundle)
            self._native = (ffi.Classifier.from_bundle_bytes(data, threads, limits) if keys is None
                            else ffi.Classifier.from_bundle_bytes_signed(data, keys, threads, limits))
        elif isinstance(bundle, (str, os.PathLike)):
            path = os.fspath(bundle)
            self._native = (ffi.Classifier.from_bundle_path(path, threads, limits) if keys is None
                            else ffi.Classifier.from_bundle_path_signed(path, keys, threads, limits))
        else:
            raise TypeError(f"a bundle is a path or bytes, not {type(bundle).__name__}")

    def identify(self, photo: Any, country: Optional[str] = None, top_k: int = 5,
                 location: Optional[Tuple[float, float]] = None) -> Answer:
        """The answer for one photo: bytes (JPEG, PNG, WebP), a path, a PIL image or an HxWx3 uint8 numpy array.

        ``country``: where the photo was taken, an ISO 3166-1 alpha-2 code or an English name; its snakes are
        weighted by where they live. Without it the photo's own GPS position (EXIF) gives the country, else
        ``location`` (``(latitude, longitude)`` in decimal degrees: where you are), found offline; else no prior is
        applied (never guess it from the language). ``answer.country_source`` says which. ``top_k``: how many
        species to rank."""
        data, path = photo_bytes(photo)
        at = None if location is None else ffi.Location(latitude=float(location[0]), longitude=float(location[1]))
        return Answer(self._native.identify(data, country, top_k, at), path)

    def identify_many(self, photos: Union[PathLike, Iterable[Any]], country: Optional[str] = None, top_k: int = 5,
                      progress: bool = False, location: Optional[Tuple[float, float]] = None) -> List[Answer]:
        """Answers for many photos, in order: a folder (its JPEG, PNG and WebP files, sorted by name) or any
        iterable of photos. A photo that fails raises its error, with the file named. ``progress=True`` draws a
        bar on stderr."""
        if isinstance(photos, (str, os.PathLike)):
            folder = os.fspath(photos)
            items: List[Any] = [os.path.join(folder, n) for n in sorted(os.listdir(folder))
                                if n.lower().endswith(PHOTO_SUFFIXES) and os.path.isfile(os.path.join(folder, n))]
        else:
            items = list(photos)
        answers = []
        for i, photo in enumerate(items):
            try:
                answers.append(self.identify(photo, country, top_k, location))
            except SnakeIdError as e:
                if isinstance(photo, (str, os.PathLike)):
                    raise type(e)(f"{os.fspath(photo)}: {e}") from None
                raise
            if progress:
                _bar(i + 1, len(items))
        return answers

    def bundle_info(self) -> ffi.BundleInfo:
        """The bundle's name, version, species (with venom status) and the countries of its prior."""
        return self._native.bundle_info()

    def benchmark(self, photo: Any, iterations: int = 20) -> ffi.BenchmarkReport:
        """Cold start, first call and per-stage p50/p90/p99 over ``iterations`` calls on one photo."""
        return self._native.benchmark(photo_bytes(photo)[0], iterations)

    def __repr__(self) -> str:
        info = self._native.bundle_info()
        return f"<snakeid.Classifier {info.name} {info.version}: {len(info.species)} species>"


def _bar(done: int, total: int) -> None:
    width = 30
    filled = width * done // max(total, 1)
    sys.stderr.write(f"\r[{'#' * filled}{' ' * (width - filled)}] {done}/{total}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()
