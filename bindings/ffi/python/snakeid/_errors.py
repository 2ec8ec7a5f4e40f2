"""The library's errors under their own names: one base, `SnakeIdError`, and a class per kind of failure."""

from ._native import snakeid as ffi

# The generated module binds `SnakeIdError` to a holder of the variant classes, which is no exception and cannot be
# caught; the exception every variant derives from is their base, which carries the same variant attributes.
SnakeIdError = ffi.SnakeIdError.InvalidImage.__bases__[0]
InvalidImage = SnakeIdError.InvalidImage
InvalidBundle = SnakeIdError.InvalidBundle
UntrustedBundle = SnakeIdError.UntrustedBundle
UnknownCountry = SnakeIdError.UnknownCountry
InvalidLocation = SnakeIdError.InvalidLocation
Backend = SnakeIdError.Backend
Internal = SnakeIdError.Internal
