"""The public surface is pinned: changing it must be a deliberate edit here."""

import wool

PUBLIC = {
    "AuthenticationError",
    "ContextVar",
    "ContextVarCollision",
    "CredentialsError",
    "Discovery",
    "DispatchCounters",
    "DispatchTimeout",
    "DnsDiscovery",
    "LanDiscovery",
    "LatencySummary",
    "LocalDiscovery",
    "MeshNotRunning",
    "MeshStatistics",
    "NoWorkersAvailable",
    "PayloadTooLarge",
    "PeerStatistics",
    "ProtocolError",
    "RemoteError",
    "RemoteTask",
    "Routine",
    "RpcError",
    "RuntimeContext",
    "SeedDiscovery",
    "SerializationError",
    "Task",
    "Token",
    "UnsupportedArgument",
    "WoolError",
    "WorkerCredentials",
    "WorkerInfo",
    "WorkerLost",
    "WorkerPool",
    "WorkerStartError",
    "current_task",
    "load_ipython_extension",
    "output_handler",
    "read_secret",
    "routine",
    "set_output_handler",
    "timeout",
    "unload_ipython_extension",
}


def test_all_is_pinned() -> None:
    assert set(wool.__all__) == PUBLIC
    assert all(hasattr(wool, name) for name in wool.__all__)


def test_errors_form_one_family() -> None:
    for name in PUBLIC:
        obj = getattr(wool, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, wool.WoolError), name
    assert issubclass(wool.DispatchTimeout, TimeoutError)
    assert issubclass(wool.WorkerLost, ConnectionError)
    assert issubclass(wool.MeshNotRunning, wool.NoWorkersAvailable)


def test_importing_wool_does_not_import_ipython() -> None:
    import subprocess
    import sys

    code = "import sys, wool; print('IPython' in sys.modules, 'ipywidgets' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_discovery_backends_load_on_first_use() -> None:
    import subprocess
    import sys

    code = (
        "import sys, wool; print('zeroconf' in sys.modules, 'wool.discovery' in sys.modules);"
        "wool.LocalDiscovery; print('zeroconf' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False"]
    from wool.discovery import Discovery, LanDiscovery, LocalDiscovery

    assert (wool.Discovery, wool.LocalDiscovery, wool.LanDiscovery) == (
        Discovery,
        LocalDiscovery,
        LanDiscovery,
    )
