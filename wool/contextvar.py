"""``wool.ContextVar``: a context variable whose value travels with routine calls.

It behaves as ``contextvars.ContextVar`` does locally (each asyncio task
sees its own value), and across the mesh as if the routine ran in the
caller's context: a routine sees the caller's value, and what the routine
sets comes back to the caller when it returns (or raises) and at each
yield of a stream.

Every value lives in one standard-library context variable holding an
immutable mapping (``None`` until a ``wool.ContextVar`` is set in that
context), so a call made where none is set costs one ``get()``.

Identity: a variable is its ``(namespace, name)`` key, on the wire and in
a process. ``namespace`` defaults to the top-level package of the module
that declares it (``"__main__"`` in a notebook or script), so caller and
workers agree when both import that module. Declaring the same key again
returns the same object; a different default raises ``ContextVarCollision``,
except in ``__main__``, where the newest declaration's default wins (a
notebook cell run again after an edit).
"""

from __future__ import annotations

import contextvars
import pickle
import sys
import threading
from collections.abc import Mapping
from typing import Any, ClassVar, Final, Generic, TypeAlias, TypeVar, cast, overload

from wool import codec
from wool.errors import SerializationError, WoolError
from wool.protocol import frames

T = TypeVar("T")
Key: TypeAlias = tuple[str, str]
Values: TypeAlias = Mapping[Key, Any]
"""Every ``wool.ContextVar`` value set in one context, by key; never mutated once made."""

_values: contextvars.ContextVar[Values | None] = contextvars.ContextVar(
    "wool_context", default=None
)
current = _values.get
"""The values set in the running context, or None (the cheap check on the dispatch path)."""


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<Token.MISSING>"


MISSING: Final = _Missing()
_NO_DEFAULT: Final = _Missing()


class ContextVarCollision(WoolError, ValueError):
    """A ``wool.ContextVar`` was declared again with the same key but another default."""


class Token(Generic[T]):
    """What ``ContextVar.set`` returns, for ``ContextVar.reset`` (as ``contextvars.Token``).

    It resets only in the context it was made in (else ``ValueError``), and
    only once (else ``RuntimeError``). It does not cross processes.
    """

    MISSING: ClassVar[object] = MISSING
    """``old_value`` when the variable had no value before ``set``."""

    __slots__ = ("_inner", "_old", "_var")

    def __init__(self, var: ContextVar[T], old: object, inner: contextvars.Token) -> None:
        self._var = var
        self._old = old
        self._inner = inner

    @property
    def var(self) -> ContextVar[T]:
        return self._var

    @property
    def old_value(self) -> object:
        return self._old

    def __repr__(self) -> str:
        return f"<wool.Token var={self._var!r} at 0x{id(self):x}>"


_registry: dict[Key, ContextVar[Any]] = {}
_lock = threading.Lock()


class ContextVar(Generic[T]):
    """A context variable whose value a routine sees on its worker, and whose changes return.

    ``get``, ``set`` and ``reset`` work as in ``contextvars``; concurrent
    tasks keep their own values. A value must be picklable when a routine
    is called while it is set (else ``SerializationError`` naming the
    variable). Values are copies on the other side: a change travels back
    when the routine calls ``set``, not when it mutates an object in place.
    See the module docstring for how variables are identified.
    """

    __slots__ = ("_default", "_key")
    _default: Any
    _key: Key

    @overload
    def __new__(cls, name: str, /, *, namespace: str | None = None) -> ContextVar[T]: ...
    @overload
    def __new__(
        cls, name: str, /, *, namespace: str | None = None, default: T
    ) -> ContextVar[T]: ...
    def __new__(
        cls, name: str, /, *, namespace: str | None = None, default: Any = _NO_DEFAULT
    ) -> ContextVar[T]:
        if not isinstance(name, str) or not name:
            raise TypeError(f"a wool.ContextVar needs a non-empty str name, not {name!r}")
        if namespace is None:
            namespace = _declaring_package()
        return cast("ContextVar[T]", _declare((namespace, name), default, restored=False))

    @property
    def name(self) -> str:
        return self._key[1]

    @property
    def namespace(self) -> str:
        return self._key[0]

    @overload
    def get(self) -> T: ...
    @overload
    def get(self, default: T, /) -> T: ...
    def get(self, *default: T) -> T:
        """The value in this context, else ``default``, else the declared default.

        Raises LookupError when there is none of these.
        """
        values = _values.get()
        if values is not None:
            try:
                return cast(T, values[self._key])
            except KeyError:
                pass
        if default:
            return default[0]
        if self._default is not _NO_DEFAULT:
            return cast(T, self._default)
        raise LookupError(self)

    def set(self, value: T) -> Token[T]:
        values = _values.get()
        old = MISSING if values is None else values.get(self._key, MISSING)
        changed = dict(values) if values else {}
        changed[self._key] = value
        return Token(self, old, _values.set(changed))

    def reset(self, token: Token[T]) -> None:
        """Give the variable back the value it had before ``token``'s ``set``."""
        if not isinstance(token, Token):
            raise TypeError(f"expected a wool.Token, not {type(token).__name__}")
        if token._var is not self:
            raise ValueError(f"{token!r} was created by a different ContextVar")
        values = _values.get()
        _values.reset(token._inner)  # ValueError in another context, RuntimeError if used
        changed = dict(values) if values else {}
        if token._old is MISSING:
            changed.pop(self._key, None)
        else:
            changed[self._key] = token._old
        _values.set(changed or None)

    def __reduce__(self) -> tuple[Any, ...]:
        # By key: a routine shipped by value finds the same variable on its worker.
        has_default = self._default is not _NO_DEFAULT
        return (_restore, (*self._key, has_default, self._default if has_default else None))

    def __repr__(self) -> str:
        default = "" if self._default is _NO_DEFAULT else f" default={self._default!r}"
        return f"<wool.ContextVar {self._key[0]}:{self._key[1]}{default} at 0x{id(self):x}>"


def _declaring_package() -> str:
    """Top-level package of the module calling ContextVar(...) (or ContextVar[T](...))."""
    frame = sys._getframe(2)
    while frame.f_back is not None and frame.f_globals.get("__name__") in _SKIPPED:
        frame = frame.f_back
    module = frame.f_globals.get("__name__") or "__main__"
    return str(module).partition(".")[0]


_SKIPPED: Final = frozenset({"typing", __name__})


def _declare(key: Key, default: Any, *, restored: bool) -> ContextVar[Any]:
    with _lock:
        var = _registry.get(key)
        if var is None:
            var = object.__new__(ContextVar)
            var._key = key
            var._default = default
            _registry[key] = var
        elif not _same(var._default, default):
            if key[0] == "__main__":
                var._default = default
            elif not restored:
                raise ContextVarCollision(
                    f"wool.ContextVar {key[1]!r} is already declared in namespace {key[0]!r} "
                    f"with another default ({_describe(var._default)}, now "
                    f"{_describe(default)}); a key names one variable. Pass namespace= "
                    "to declare a distinct one."
                )
        return var


def _restore(namespace: str, name: str, has_default: bool, default: Any) -> ContextVar[Any]:
    """The variable a pickled ContextVar names here (declared now if it is not yet)."""
    return _declare((namespace, name), default if has_default else _NO_DEFAULT, restored=True)


def _same(a: object, b: object) -> bool:
    if a is b:
        return True
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:
        return False


def _describe(default: object) -> str:
    return "none" if default is _NO_DEFAULT else repr(default)[:80]


def _label(key: Key) -> str:
    return f"wool.ContextVar {key[1]!r}" + ("" if key[0] == "__main__" else f" ({key[0]})")


# -- on the wire ----------------------------------------------------------
# A Context frame's payload is a pickled dict {key: pickled value}; in a
# worker's answer, None stands for a variable the routine reset to no value.


def _dump(raw: dict[Key, bytes | None]) -> bytes:
    data = pickle.dumps(raw, pickle.HIGHEST_PROTOCOL)
    if len(data) > frames.LIMIT:
        raise SerializationError(
            f"the wool.ContextVar values come to {len(data)} bytes, over the "
            f"{frames.LIMIT}-byte limit of one message"
        )
    return data


def _pickled(key: Key, value: object, where: str) -> bytes:
    try:
        data = codec.encode_value(value)
    except SerializationError as exc:
        raise SerializationError(
            f"{_label(key)} holds a {type(value).__qualname__} that cannot be sent {where}: {exc}"
        ) from exc
    return data if type(data) is bytes else bytes(data)


def encode(values: Values | None, where: str) -> bytes:
    """Every value in ``values``, for a Dispatch or a Resume; ``where`` completes an error.

    Raises SerializationError naming the first variable whose value cannot
    be pickled, before anything is sent.
    """
    if not values:
        return _dump({})
    return _dump({key: _pickled(key, value, where) for key, value in values.items()})


def changes(base: Values | None, where: str) -> bytes | None:
    """What the running context changed since ``base`` was installed, or None if nothing.

    A value counts as changed when it is not the very object ``base`` held.
    """
    now = _values.get()
    if now is base:
        return None
    before = base or {}
    after = now or {}
    raw: dict[Key, bytes | None] = {
        key: _pickled(key, value, where)
        for key, value in after.items()
        if before.get(key, MISSING) is not value
    }
    for key in before:
        if key not in after:
            raw[key] = None
    return _dump(raw) if raw else None


def install(payload: frames.Payload, where: str) -> Values | None:
    """Make the caller's values (an ``encode`` payload) this context's; returns them."""
    values = {key: value for key, value in _decoded(payload, where) if value is not MISSING}
    installed = values or None
    _values.set(installed)
    return installed


def adopt(payload: frames.Payload, where: str) -> None:
    """Apply a routine's changes (a ``changes`` payload) to this context."""
    values = _values.get()
    merged = dict(values) if values else {}
    for key, value in _decoded(payload, where):
        if value is MISSING:
            merged.pop(key, None)
        else:
            merged[key] = value
    _values.set(merged or None)


def _decoded(payload: frames.Payload, where: str) -> list[tuple[Key, object]]:
    try:
        raw = pickle.loads(bytes(payload) if isinstance(payload, frames.Parts) else payload)
        if not isinstance(raw, dict):
            raise TypeError(f"a {type(raw).__name__}, not a dict")
    except Exception as exc:
        raise SerializationError(
            f"the wool.ContextVar values {where} cannot be read: {type(exc).__name__}: {exc}"
        ) from None
    out: list[tuple[Key, object]] = []
    for key, data in raw.items():
        if (
            not isinstance(key, tuple)
            or len(key) != 2
            or not all(isinstance(part, str) for part in key)
        ):
            raise SerializationError(f"the wool.ContextVar values {where} name {key!r}")
        if data is None:
            out.append((key, MISSING))
            continue
        try:
            out.append((key, codec.decode_value(data)))
        except Exception as exc:
            raise SerializationError(
                f"the value of {_label(key)} {where} cannot be rebuilt: {type(exc).__name__}: {exc}"
            ) from exc
    return out
