from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Envelope(_message.Message):
    __slots__ = ("frames",)
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    frames: _containers.RepeatedCompositeFieldContainer[Frame]
    def __init__(self, frames: _Optional[_Iterable[_Union[Frame, _Mapping]]] = ...) -> None: ...

class Frame(_message.Message):
    __slots__ = ("call", "trailing", "dispatch", "resume", "cancel", "outcome", "need_code", "output")
    CALL_FIELD_NUMBER: _ClassVar[int]
    TRAILING_FIELD_NUMBER: _ClassVar[int]
    DISPATCH_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    NEED_CODE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    call: int
    trailing: int
    dispatch: Dispatch
    resume: Resume
    cancel: Cancel
    outcome: Outcome
    need_code: NeedCode
    output: Output
    def __init__(self, call: _Optional[int] = ..., trailing: _Optional[int] = ..., dispatch: _Optional[_Union[Dispatch, _Mapping]] = ..., resume: _Optional[_Union[Resume, _Mapping]] = ..., cancel: _Optional[_Union[Cancel, _Mapping]] = ..., outcome: _Optional[_Union[Outcome, _Mapping]] = ..., need_code: _Optional[_Union[NeedCode, _Mapping]] = ..., output: _Optional[_Union[Output, _Mapping]] = ...) -> None: ...

class RoutineRef(_message.Message):
    __slots__ = ("module", "qualname", "digest", "code", "uid")
    MODULE_FIELD_NUMBER: _ClassVar[int]
    QUALNAME_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    module: str
    qualname: str
    digest: bytes
    code: bytes
    uid: str
    def __init__(self, module: _Optional[str] = ..., qualname: _Optional[str] = ..., digest: _Optional[bytes] = ..., code: _Optional[bytes] = ..., uid: _Optional[str] = ...) -> None: ...

class Dispatch(_message.Message):
    __slots__ = ("routine", "args", "generator", "timeout", "parent", "capture_output")
    ROUTINE_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    GENERATOR_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    routine: RoutineRef
    args: bytes
    generator: bool
    timeout: float
    parent: str
    capture_output: bool
    def __init__(self, routine: _Optional[_Union[RoutineRef, _Mapping]] = ..., args: _Optional[bytes] = ..., generator: _Optional[bool] = ..., timeout: _Optional[float] = ..., parent: _Optional[str] = ..., capture_output: _Optional[bool] = ...) -> None: ...

class Resume(_message.Message):
    __slots__ = ("kind", "value")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        NEXT: _ClassVar[Resume.Kind]
        SEND: _ClassVar[Resume.Kind]
        THROW: _ClassVar[Resume.Kind]
        CLOSE: _ClassVar[Resume.Kind]
    NEXT: Resume.Kind
    SEND: Resume.Kind
    THROW: Resume.Kind
    CLOSE: Resume.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    kind: Resume.Kind
    value: bytes
    def __init__(self, kind: _Optional[_Union[Resume.Kind, str]] = ..., value: _Optional[bytes] = ...) -> None: ...

class Cancel(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Outcome(_message.Message):
    __slots__ = ("kind", "value", "error_type", "error_message", "traceback")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        RETURN: _ClassVar[Outcome.Kind]
        YIELD: _ClassVar[Outcome.Kind]
        RAISE: _ClassVar[Outcome.Kind]
        STOP: _ClassVar[Outcome.Kind]
        CANCELLED: _ClassVar[Outcome.Kind]
    RETURN: Outcome.Kind
    YIELD: Outcome.Kind
    RAISE: Outcome.Kind
    STOP: Outcome.Kind
    CANCELLED: Outcome.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TRACEBACK_FIELD_NUMBER: _ClassVar[int]
    kind: Outcome.Kind
    value: bytes
    error_type: str
    error_message: str
    traceback: str
    def __init__(self, kind: _Optional[_Union[Outcome.Kind, str]] = ..., value: _Optional[bytes] = ..., error_type: _Optional[str] = ..., error_message: _Optional[str] = ..., traceback: _Optional[str] = ...) -> None: ...

class NeedCode(_message.Message):
    __slots__ = ("digest",)
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    digest: bytes
    def __init__(self, digest: _Optional[bytes] = ...) -> None: ...

class Output(_message.Message):
    __slots__ = ("stream", "text")
    class Stream(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STDOUT: _ClassVar[Output.Stream]
        STDERR: _ClassVar[Output.Stream]
    STDOUT: Output.Stream
    STDERR: Output.Stream
    STREAM_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    stream: Output.Stream
    text: str
    def __init__(self, stream: _Optional[_Union[Output.Stream, str]] = ..., text: _Optional[str] = ...) -> None: ...

class StatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Counters(_message.Message):
    __slots__ = ("started", "completed", "failed", "cancelled", "buckets", "total_ns", "max_ns")
    class BucketsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: int
        def __init__(self, key: _Optional[int] = ..., value: _Optional[int] = ...) -> None: ...
    STARTED_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_NS_FIELD_NUMBER: _ClassVar[int]
    MAX_NS_FIELD_NUMBER: _ClassVar[int]
    started: int
    completed: int
    failed: int
    cancelled: int
    buckets: _containers.ScalarMap[int, int]
    total_ns: int
    max_ns: int
    def __init__(self, started: _Optional[int] = ..., completed: _Optional[int] = ..., failed: _Optional[int] = ..., cancelled: _Optional[int] = ..., buckets: _Optional[_Mapping[int, int]] = ..., total_ns: _Optional[int] = ..., max_ns: _Optional[int] = ...) -> None: ...

class StatsReply(_message.Message):
    __slots__ = ("id", "address", "pid", "tags", "executed", "dispatched", "cpu_percent", "rss_bytes", "uptime_s", "code_received", "rejected")
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    EXECUTED_FIELD_NUMBER: _ClassVar[int]
    DISPATCHED_FIELD_NUMBER: _ClassVar[int]
    CPU_PERCENT_FIELD_NUMBER: _ClassVar[int]
    RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    UPTIME_S_FIELD_NUMBER: _ClassVar[int]
    CODE_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    id: str
    address: str
    pid: int
    tags: _containers.RepeatedScalarFieldContainer[str]
    executed: Counters
    dispatched: Counters
    cpu_percent: float
    rss_bytes: int
    uptime_s: float
    code_received: int
    rejected: int
    def __init__(self, id: _Optional[str] = ..., address: _Optional[str] = ..., pid: _Optional[int] = ..., tags: _Optional[_Iterable[str]] = ..., executed: _Optional[_Union[Counters, _Mapping]] = ..., dispatched: _Optional[_Union[Counters, _Mapping]] = ..., cpu_percent: _Optional[float] = ..., rss_bytes: _Optional[int] = ..., uptime_s: _Optional[float] = ..., code_received: _Optional[int] = ..., rejected: _Optional[int] = ...) -> None: ...

class Peer(_message.Message):
    __slots__ = ("id", "address", "pid", "tags", "control")
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    CONTROL_FIELD_NUMBER: _ClassVar[int]
    id: str
    address: str
    pid: int
    tags: _containers.RepeatedScalarFieldContainer[str]
    control: str
    def __init__(self, id: _Optional[str] = ..., address: _Optional[str] = ..., pid: _Optional[int] = ..., tags: _Optional[_Iterable[str]] = ..., control: _Optional[str] = ...) -> None: ...

class PeerList(_message.Message):
    __slots__ = ("peers",)
    PEERS_FIELD_NUMBER: _ClassVar[int]
    peers: _containers.RepeatedCompositeFieldContainer[Peer]
    def __init__(self, peers: _Optional[_Iterable[_Union[Peer, _Mapping]]] = ...) -> None: ...
