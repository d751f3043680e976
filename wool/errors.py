"""Typed errors a caller can catch; each message says what happened and where."""

from __future__ import annotations


class WoolError(Exception):
    """Base of every error Wool raises itself (user exceptions keep their own type)."""


class NoWorkersAvailable(WoolError):
    """No reachable worker can take the call (none started, none left, none with the tags)."""


class MeshNotRunning(NoWorkersAvailable):
    """A routine was called where no mesh is active."""

    def __init__(self, routine: str = "") -> None:
        # A routine's name gets "()"; a description such as "this %%wool cell" stays as it is.
        what = f" {routine}" + ("()" if " " not in routine else "") if routine else ""
        super().__init__(
            f"Cannot dispatch{what}: no wool mesh is running here. Wrap the calls in "
            "`async with wool.WorkerPool(spawn=N): ...`, start one with "
            "`wool.WorkerPool(spawn=N).start(default=True)`, or in Jupyter run "
            "`%load_ext wool` and `%wool start`."
        )


class RpcError(WoolError):
    """The transport to a peer failed."""


class WorkerLost(RpcError, ConnectionError):
    """The worker running a call died or became unreachable before answering.

    Dispatch is at-most-once: the call may or may not have run, and it is not
    retried.
    """


class AuthenticationError(RpcError, PermissionError):
    """A peer refused our credentials, or could not prove it holds the mesh secret."""


class CredentialsError(WoolError, ValueError):
    """TLS credentials that cannot be used: a missing file, or not PEM of the expected kind."""


class ProtocolError(RpcError):
    """A peer sent something that is not a valid Wool frame."""


class DispatchTimeout(WoolError, TimeoutError):
    """A call ran past its deadline; the remote routine was cancelled."""


class SerializationError(WoolError, TypeError):
    """A value could not be encoded for the wire (or decoded on the other side)."""


class PayloadTooLarge(SerializationError):
    """A value is larger than the limit its sender allows (``WorkerPool(max_payload=...)``).

    Raised before anything is sent; the message names the argument, its
    type and size, and the limit. A routine's result or yield over its
    worker's limit fails that call only, with this error.
    """


class RemoteError(WoolError):
    """A remote exception that could not be rebuilt as its own type.

    ``type_name`` (``"builtins.SystemExit"``), ``message`` and
    ``remote_traceback`` keep what the worker reported. It pickles, so it
    crosses further hops as itself.
    """

    def __init__(self, type_name: str, message: str, remote_traceback: str = "") -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message
        self.remote_traceback = remote_traceback

    def __reduce__(self) -> tuple:
        return (type(self), (self.type_name, self.message, self.remote_traceback), self.__dict__)

    def __str__(self) -> str:
        text = super().__str__()
        if self.remote_traceback:
            text += "\n\nRemote traceback:\n" + self.remote_traceback
        return text


class WorkerStartError(WoolError):
    """A worker process did not come up in time, or exited while starting."""


class UnsupportedArgument(WoolError, TypeError):
    """An argument the ``wool`` package accepts that this Wool does not support yet.

    The message names the argument and says what to use instead; nothing was
    started.
    """
