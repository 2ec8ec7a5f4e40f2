"""snakeid: offline snake identification from a photo. Is it a snake, which species, is it likely venomous?

    import snakeid
    classifier = snakeid.Classifier()              # the bundle inside the package; build once, share across threads
    answer = classifier.identify("cobra.jpg", country="PH")
    print(answer)                                  # reads as `snakeid identify` does
    if answer.venomous_warning: ...

A photo is bytes (JPEG, PNG, WebP), a path (``str`` or ``os.PathLike``), a PIL image or an HxWx3 ``uint8`` numpy
array. Errors are typed: ``snakeid.InvalidImage``, ``InvalidBundle``, ``UntrustedBundle``, ``UnknownCountry``,
``InvalidLocation``, ``Backend``, ``Internal`` (all ``snakeid.SnakeIdError``), each with a one-line message. ``python -m snakeid PHOTO``
answers as the CLI's ``identify``. ``snakeid.Classifier(limits=snakeid.Limits(max_pixels=24_000_000))`` refuses larger
photos (a phone or small machine with little memory: a PNG is decoded at full size).

This layer is plain Python over the module UniFFI generates (``snakeid._native``), which stays generated.
"""

from ._answer import Answer
from ._classifier import Classifier
from ._errors import (Backend, Internal, InvalidBundle, InvalidImage, InvalidLocation, SnakeIdError, UnknownCountry,
                      UntrustedBundle)
from ._native import snakeid as _ffi

SnakeVerdict = _ffi.SnakeVerdict
Prediction = _ffi.Prediction
GenusAnswer = _ffi.GenusAnswer
Species = _ffi.Species
BundleInfo = _ffi.BundleInfo
BenchmarkReport = _ffi.BenchmarkReport
Limits = _ffi.Limits

__all__ = [
    "Classifier", "Answer", "SnakeVerdict", "Prediction", "GenusAnswer", "Species", "BundleInfo", "BenchmarkReport", "Limits",
    "SnakeIdError", "InvalidImage", "InvalidBundle", "UntrustedBundle", "UnknownCountry", "InvalidLocation", "Backend",
    "Internal",
]
