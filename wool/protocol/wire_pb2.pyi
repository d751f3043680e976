from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

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

class Member(_message.Message):
    __slots__ = ("id", "address", "control", "pid", "tags", "incarnation", "heartbeat", "left")
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CONTROL_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    LEFT_FIELD_NUMBER: _ClassVar[int]
    id: str
    address: str
    control: str
    pid: int
    tags: _containers.RepeatedScalarFieldContainer[str]
    incarnation: int
    heartbeat: int
    left: bool
    def __init__(self, id: _Optional[str] = ..., address: _Optional[str] = ..., control: _Optional[str] = ..., pid: _Optional[int] = ..., tags: _Optional[_Iterable[str]] = ..., incarnation: _Optional[int] = ..., heartbeat: _Optional[int] = ..., left: _Optional[bool] = ...) -> None: ...

class MemberList(_message.Message):
    __slots__ = ("members",)
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    members: _containers.RepeatedCompositeFieldContainer[Member]
    def __init__(self, members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ...) -> None: ...
